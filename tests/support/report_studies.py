"""SQLite studies shaped as docs/stored-data.md describes, for the report tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

SCHEDULE = {
    "batch_sizes": [32, 64, 128, 256],
    "lr_min": 0.001,
    "lr_max": 1.0,
    "n_lrs": 20,
    "explore_fraction": 0.25,
    "epochs_per_rung": 5,
    "final_epochs": 10,
    "rung_steps": [0, 6, 12],
    "train_epochs_total": 20,
    "explorations_total": 4,
    "metric_name": "accuracy",
}

BATCH = CategoricalDistribution([32, 64, 128, 256])


def rung(trial: int, value: float) -> dict[str, Any]:
    return {"trial": trial, "value": value, "energy_per_epoch_j": 1.0, "stable_lr": 0.1}


def sm2_attrs(
    total: float,
    explore: float,
    per_epoch: float,
    epochs: int,
    explorations: int,
    source: str = "rapl",
    lr: float = 0.1,
) -> dict[str, Any]:
    return {
        "sm2.energy_total_j": total,
        "sm2.energy_explore_j": explore,
        "sm2.energy_per_epoch_j": per_epoch,
        "sm2.epochs_trained": epochs,
        "sm2.explorations": explorations,
        "sm2.energy_source": source,
        "sm2.stable_lr": lr,
    }


def add(
    study: optuna.Study,
    state: TrialState,
    batch_size: int,
    user_attrs: dict[str, Any],
    values: dict[int, float],
    system_attrs: dict[str, Any] | None = None,
) -> None:
    study.add_trial(
        create_trial(
            state=state,
            value=values[max(values)] if state == TrialState.COMPLETE else None,
            params={"batch_size": batch_size},
            distributions={"batch_size": BATCH},
            user_attrs=user_attrs,
            system_attrs=system_attrs or {},
            intermediate_values=values,
        )
    )


def build_sm2_study(
    path: Path, name: str = "sm2", *, schedule: bool = True, source: str = "rapl"
) -> str:
    """Trials 0-5, worked out by hand in test_study_report.py; returns the storage URL."""
    url = f"sqlite:///{path}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    if schedule:
        study.set_user_attr("sm2.schedule", SCHEDULE)
    # 0: survived every rung.
    add(
        study,
        TrialState.COMPLETE,
        32,
        sm2_attrs(1000.0, 100.0, 40.0, 20, 4, source, lr=0.25),
        {0: 0.5, 6: 0.7, 12: 0.8, 23: 0.9},
        {"sm2:rung_0": rung(0, 0.5), "sm2:rung_1": rung(0, 0.7), "sm2:rung_2": rung(0, 0.8)},
    )
    # 1: pruned at rung 1 (step 6) after 5 epochs and 2 explorations.
    add(
        study,
        TrialState.PRUNED,
        64,
        sm2_attrs(300.0, 60.0, 30.0, 5, 2, source),
        {0: 0.4, 6: 0.6},
        {"sm2:rung_0": rung(1, 0.4), "sm2:rung_1": rung(1, 0.6)},
    )
    # 2: pruned at rung 0 after the first exploration.
    add(
        study,
        TrialState.PRUNED,
        128,
        sm2_attrs(100.0, 40.0, 20.0, 0, 1, source),
        {0: 0.3},
        {"sm2:rung_0": rung(2, 0.3)},
    )
    # 3: failed after rung 1; trial 4 is its heartbeat retry.
    add(
        study,
        TrialState.FAIL,
        256,
        sm2_attrs(50.0, 20.0, 10.0, 0, 1, source),
        {0: 0.2},
        {"sm2:rung_0": rung(3, 0.2)},
    )
    # 4: the retry, holding trial 3's inherited record only; pruned later.
    add(
        study,
        TrialState.PRUNED,
        256,
        {**sm2_attrs(80.0, 20.0, 10.0, 2, 1, source), "sm2.resumed_from": 3},
        {0: 0.2, 2: 0.25},
        {"failed_trial": 3, "sm2:rung_0": rung(3, 0.2)},
    )
    # 5: failed before measuring anything.
    add(study, TrialState.FAIL, 32, {}, {})
    return url
