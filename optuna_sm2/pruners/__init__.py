"""Pruning: SM²'s successive halving, its ranking rule (Eq. 2), ``report`` and a trial's
energy book.

Knows Optuna and numpy, never torch: a pruner runs in any Optuna script.
"""

from __future__ import annotations

from optuna_sm2.pruners._report import report
from optuna_sm2.pruners._successive_halving_energy import (
    SuccessiveHalvingEnergyPruner,
    own_records,
)
from optuna_sm2.pruners._trial_energy import TrialEnergy, median_and_spread
from optuna_sm2.pruners._weighted_objective import weighted_objective

__all__ = [
    "SuccessiveHalvingEnergyPruner",
    "TrialEnergy",
    "median_and_spread",
    "own_records",
    "report",
    "weighted_objective",
]
