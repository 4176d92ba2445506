"""``optimize_synchronous``: the paper's schedule, every batch size ranked together at each rung.

    python examples/synchronous.py [--tiny]

Writes the study ``synchronous`` to ``studies/examples.db`` (delete it to run again from scratch).
The workload is the demo's (``optuna_sm2.scenarios.digits``): an MLP on digits, 8 batch sizes
from 4 to 512.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
import torch

from optuna_sm2 import optimize_synchronous
from optuna_sm2.scenarios.digits import demo_objective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds, for smoke tests")
    args = parser.parse_args()

    torch.set_num_threads(1)
    objective = (
        demo_objective(epochs_per_rung=1, final_epochs=1, n_lrs=6)
        if args.tiny
        else demo_objective()
    )
    Path("studies").mkdir(exist_ok=True)
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
