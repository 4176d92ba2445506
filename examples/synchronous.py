"""``optimize_synchronous``: the paper's schedule, every batch size ranked together at each rung.

    python examples/synchronous.py [--tiny]

Writes the study ``synchronous`` to ``studies/examples.db`` (delete it to run again from scratch).
"""

from __future__ import annotations

import argparse

import optuna
import torch

from optuna_sm2 import SM2Objective, optimize_synchronous
from optuna_sm2.demo import accuracy, build_mlp, load_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds, for smoke tests")
    args = parser.parse_args()

    torch.set_num_threads(1)
    train, valid = load_digits()
    objective = SM2Objective(
        lambda trial: build_mlp(hidden=64),
        train,
        valid,
        torch.nn.functional.cross_entropy,
        accuracy,
        batch_sizes=(16, 32, 64, 128) if args.tiny else (8, 16, 32, 64, 128, 256, 512, 1024),
        epochs_per_rung=1 if args.tiny else 5,
        final_epochs=1 if args.tiny else 10,
        metric_name="accuracy",
    )
    study = optuna.create_study(
        storage="sqlite:///studies/examples.db",
        study_name="synchronous",
        load_if_exists=True,
        direction="maximize",
        pruner=objective.make_pruner(),
    )
    optimize_synchronous(study, objective)
    for t in study.trials:
        print(t.number, t.params["batch_size"], t.state.name, t.user_attrs["sm2.energy_total_j"])


if __name__ == "__main__":
    main()
