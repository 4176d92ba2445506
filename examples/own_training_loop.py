"""The pruner, ``report()``, ``explore_lr`` and ``EnergyTracker`` in your own training loop.

    python examples/own_training_loop.py [--tiny]

Writes the study ``own-loop`` to ``studies/examples.db``.
"""

from __future__ import annotations

import argparse

import optuna
import torch

from optuna_sm2 import (
    EnergyTracker,
    PreloadedBatches,
    SuccessiveHalvingEnergyPruner,
    explore_lr,
    report,
)
from optuna_sm2.scenarios.digits import accuracy, build_mlp, load_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds, for smoke tests")
    args = parser.parse_args()
    epochs, n_trials = (4, 4) if args.tiny else (16, 16)

    torch.set_num_threads(1)
    train, valid = load_digits()
    data = PreloadedBatches(*train)
    tracker = EnergyTracker()  # auto_meter(): NVML, RAPL or a labelled CPU-time estimate
    loss_fn = torch.nn.functional.cross_entropy

    def objective(trial: optuna.trial.Trial) -> float:
        batch_size = trial.suggest_categorical("batch_size", [16, 32, 64, 128])
        model = build_mlp(trial)
        explore = list(data.batches(batch_size, fraction=0.25))[:20]
        sweep = explore_lr(model, loss_fn, explore * (20 // len(explore) + 1), tracker=tracker)
        optimizer = torch.optim.SGD(model.parameters(), lr=sweep.selected_lr)
        value = 0.0
        for epoch in range(epochs):
            with tracker.window() as window:
                for inputs, targets in data.batches(batch_size):
                    optimizer.zero_grad()
                    loss_fn(model(inputs), targets).backward()
                    optimizer.step()
            with torch.no_grad():
                value = accuracy(model, valid)
            report(
                trial,
                value,
                epoch,
                energy_per_epoch_j=window.joules,
                stable_lr=sweep.selected_lr,
            )
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = optuna.create_study(
        storage="sqlite:///studies/examples.db",
        study_name="own-loop",
        load_if_exists=True,
        direction="maximize",
        pruner=SuccessiveHalvingEnergyPruner(),
    )
    study.optimize(objective, n_trials=n_trials)
    print(f"best {study.best_params}: accuracy {study.best_value:.4f} ({tracker.source})")


if __name__ == "__main__":
    main()
