"""An SM² study with every attribute of docs/stored-data.md, for the dashboard tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tests.support.report_studies import SCHEDULE, add


def record(trial: int, value: float, energy: float | None, lr: float | None) -> dict[str, Any]:
    return {"trial": trial, "value": value, "energy_per_epoch_j": energy, "stable_lr": lr}


def attrs(
    explore: float, train: float, evaluate: float, per_epoch: float, lr: float, source: str
) -> dict[str, Any]:
    return {
        "sm2.energy_total_j": explore + train + evaluate,
        "sm2.energy_explore_j": explore,
        "sm2.energy_train_j": train,
        "sm2.energy_eval_j": evaluate,
        "sm2.energy_per_epoch_j": per_epoch,
        "sm2.stable_lr": lr,
        "sm2.lr_window": [lr / 4, lr],
        "sm2.lr_diverged_at": None,
        "sm2.epochs_trained": 5,
        "sm2.explorations": 2,
        "sm2.energy_source": source,
    }


RUNG_0 = {  # trial: (value, energy per epoch, stable LR) at rung 0
    0: (0.5, 40.0, 0.25),
    1: (0.6, 30.0, 0.1),
    2: (0.3, 20.0, 0.05),
    3: (0.2, 35.0, 0.5),
}
TOTALS = {0: 1000.0, 1: 300.0, 2: 100.0, 3: 50.0}


def build_dashboard_study(
    path: Path, name: str = "sm2", *, source: str = "cpu-time-estimate"
) -> str:
    """Trials 0-3 (maximize accuracy); returns the storage URL.

    0 completes (rungs 0 and 1), 1 is pruned at rung 1, 2 and 3 at rung 0. Energy per epoch
    against the last value: 0 (40 J, 0.9), 1 (30 J, 0.65), 2 (20 J, 0.3) form the Pareto front;
    3 (35 J, 0.2) is dominated by 1.
    """
    url = f"sqlite:///{path}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    study.set_user_attr("sm2.schedule", SCHEDULE)
    rungs = {n: {"sm2:rung_0": record(n, *RUNG_0[n])} for n in RUNG_0}
    rungs[0]["sm2:rung_1"] = record(0, 0.7, 40.0, 0.25)
    rungs[1]["sm2:rung_1"] = record(1, 0.65, 30.0, 0.1)
    add(
        study,
        TrialState.COMPLETE,
        32,
        attrs(100.0, 850.0, 50.0, 40.0, 0.25, source),
        {0: 0.5, 6: 0.7, 23: 0.9},
        rungs[0],
    )
    add(
        study,
        TrialState.PRUNED,
        64,
        attrs(60.0, 220.0, 20.0, 30.0, 0.1, source),
        {0: 0.6, 6: 0.65},
        rungs[1],
    )
    add(
        study,
        TrialState.PRUNED,
        128,
        attrs(40.0, 50.0, 10.0, 20.0, 0.05, source),
        {0: 0.3},
        rungs[2],
    )
    add(
        study,
        TrialState.PRUNED,
        256,
        attrs(20.0, 25.0, 5.0, 35.0, 0.5, source),
        {0: 0.2},
        rungs[3],
    )
    return url
