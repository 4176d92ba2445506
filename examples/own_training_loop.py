"""The pruner, ``report()``, ``explore_lr`` and ``TrialEnergy`` in your own training loop.

    python examples/own_training_loop.py [--tiny]

Writes the study ``own-loop`` to ``studies/examples.db``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
import torch

from optuna_sm2 import (
    EnergyTracker,
    PreloadedBatches,
    SuccessiveHalvingEnergyPruner,
    TrialEnergy,
    attrs,
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
        energy = TrialEnergy(trial, tracker)  # books explore, train and eval windows
        explore = list(data.batches(batch_size, fraction=0.25))[:20]
        with energy.window("explore"):
            sweep = explore_lr(model, loss_fn, explore * (20 // len(explore) + 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=sweep.selected_lr)
        value = 0.0
        for epoch in range(epochs):
            with energy.window("train"):
                for inputs, targets in data.batches(batch_size):
                    optimizer.zero_grad()
                    loss_fn(model(inputs), targets).backward()
                    optimizer.step()
            with energy.window("eval"), torch.no_grad():
                value = accuracy(model, valid)
            report(
                trial,
                value,
                epoch,
                # the median epoch so far (the mean on a meter coarser than an epoch)
                energy_per_epoch_j=energy.energy_per_epoch_j,
                stable_lr=sweep.selected_lr,
            )
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    Path("studies").mkdir(exist_ok=True)
    study = optuna.create_study(
        storage="sqlite:///studies/examples.db",
        study_name="own-loop",
        load_if_exists=True,
        direction="maximize",
        pruner=SuccessiveHalvingEnergyPruner(),
    )
    study.optimize(objective, n_trials=n_trials)
    best = study.best_trial
    total = best.user_attrs.get(attrs.ENERGY_TOTAL_J)
    spent = "unmeasured" if total is None else f"{total:.2f} J"
    print(f"best {best.params}: accuracy {best.value:.4f}, {spent} ({tracker.source})")


if __name__ == "__main__":
    main()
