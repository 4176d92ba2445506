"""The exploratory learning-rate sweep (torch) and its selection rule (pure numpy)."""

from __future__ import annotations

from optuna_sm2.lr._device import check_device
from optuna_sm2.lr._plan import SweepPlan, sweep_plan
from optuna_sm2.lr._result import LRExploration
from optuna_sm2.lr._selection import MIN_LRS
from optuna_sm2.lr._state import BUILD_LR
from optuna_sm2.lr._sweep import explore_lr

__all__ = [
    "BUILD_LR",
    "MIN_LRS",
    "LRExploration",
    "SweepPlan",
    "check_device",
    "explore_lr",
    "sweep_plan",
]
