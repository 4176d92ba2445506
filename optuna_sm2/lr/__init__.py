"""The exploratory learning-rate sweep (torch) and its selection rule (pure numpy)."""

from __future__ import annotations

from optuna_sm2.lr._plan import SweepPlan, sweep_plan
from optuna_sm2.lr._result import LRExploration
from optuna_sm2.lr._sweep import explore_lr

__all__ = ["LRExploration", "SweepPlan", "explore_lr", "sweep_plan"]
