"""``optuna-sm2 demo``: the pruner on a synthetic study (the helper objective replaces it)."""

from __future__ import annotations

import argparse
from typing import Any

import optuna

from optuna_sm2 import SuccessiveHalvingEnergyPruner, report


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a small SM² study and print what the pruner decided",
        description="Run a synthetic SM² study: simulated energy, no training.",
    )
    parser.add_argument("--n-trials", type=int, default=16, help="trials to run (default 16)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n_trials < 1:
        raise ValueError(f"--n-trials must be >= 1, got {args.n_trials}")

    def objective(trial: optuna.trial.Trial) -> float:
        batch_size = trial.suggest_categorical("batch_size", [16, 32, 64, 128, 256, 512])
        accuracy = 0.0
        for epoch in range(8):
            accuracy = 1.0 - 1.0 / (epoch + 2) - batch_size / 8192
            energy = 4000.0 / batch_size**0.5  # simulated, not measured
            report(trial, accuracy, epoch, energy_per_epoch_j=energy, stable_lr=batch_size / 1000)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=SuccessiveHalvingEnergyPruner())
    study.optimize(objective, n_trials=args.n_trials)
    for t in study.trials:
        print(f"trial {t.number:3d}  batch {t.params['batch_size']:4d}  {t.state.name}")
    print(f"best: {study.best_params} (simulated energy figures)")
    return 0
