"""``SM2Objective`` with ``study.optimize``: asynchronous SM² trials.

    python examples/sm2_objective.py [--tiny]

Writes the study ``sm2-objective`` to ``studies/examples.db``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
import torch

from optuna_sm2 import SM2Objective
from optuna_sm2.scenarios.digits import accuracy, build_mlp, load_digits
from optuna_sm2.training import PhaseResult


def show(trial: optuna.trial.Trial, step: PhaseResult) -> None:
    """Called after every reported step, before the pruner decides."""
    energy = (
        "unmeasured" if step.energy_per_epoch_j is None else f"{step.energy_per_epoch_j:.3g} J"
    )
    print(
        f"trial {step.trial_number} (batch {step.batch_size}) step {step.step}/{step.n_steps - 1} "
        f"{step.kind}: accuracy {step.value:.3f}, lr {step.lr:.3g}, {energy} per epoch"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds, for smoke tests")
    args = parser.parse_args()

    torch.set_num_threads(1)
    train, valid = load_digits()
    objective = SM2Objective(
        build_mlp,  # suggests its hidden width
        train,
        valid,
        torch.nn.functional.cross_entropy,
        accuracy,
        batch_sizes=(16, 32, 64, 128),
        epochs_per_rung=1 if args.tiny else 5,
        final_epochs=1 if args.tiny else 10,
        metric_name="accuracy",
        callbacks=[show],
    )
    Path("studies").mkdir(exist_ok=True)
    study = optuna.create_study(
        storage="sqlite:///studies/examples.db",
        study_name="sm2-objective",
        load_if_exists=True,
        direction="maximize",
        pruner=objective.make_pruner(alpha=0.75, beta=0.5),
    )
    study.optimize(objective, n_trials=3 if args.tiny else 12)
    print(f"best {study.best_params}: accuracy {study.best_value:.4f}")


if __name__ == "__main__":
    main()
