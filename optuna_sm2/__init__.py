"""optuna-sm2: energy-aware hyperparameter search for Optuna (SM², arXiv 2412.08526)."""

from __future__ import annotations

from optuna_sm2 import _attrs as attrs
from optuna_sm2._batches import PreloadedBatches
from optuna_sm2._lr_sweep import LRExploration, explore_lr
from optuna_sm2._objective import SM2Objective
from optuna_sm2._report import report
from optuna_sm2._successive_halving_energy import SuccessiveHalvingEnergyPruner
from optuna_sm2._synchronous import optimize_synchronous
from optuna_sm2._weighted_objective import weighted_objective
from optuna_sm2.energy import EnergyMeter, EnergyTracker, auto_meter

__all__ = [
    "EnergyMeter",
    "EnergyTracker",
    "LRExploration",
    "PreloadedBatches",
    "SM2Objective",
    "SuccessiveHalvingEnergyPruner",
    "attrs",
    "auto_meter",
    "explore_lr",
    "optimize_synchronous",
    "report",
    "weighted_objective",
]
