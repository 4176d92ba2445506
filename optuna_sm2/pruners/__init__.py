"""Pruning: SM²'s successive halving, its ranking rule (Eq. 2), ``report`` and a trial's
energy book.

Knows Optuna and numpy, never torch: a pruner runs in any Optuna script. The ranking rule
(:func:`rank_rung`) knows neither: it ranks plain records.
"""

from __future__ import annotations

from optuna_sm2.pruners._ranking import RankedRecord, Ranking, RungRanking, rank_rung
from optuna_sm2.pruners._records import (
    RungDecision,
    RungRecord,
    own_records,
    read_records,
)
from optuna_sm2.pruners._report import report, write_figures
from optuna_sm2.pruners._settings import PrunerSettings, stored_pruner_settings
from optuna_sm2.pruners._successive_halving_energy import SuccessiveHalvingEnergyPruner
from optuna_sm2.pruners._trial_energy import TrialEnergy, measured, per_epoch_and_spread
from optuna_sm2.pruners._weighted_objective import (
    COMPONENTS,
    LRScale,
    weighted_components,
    weighted_objective,
)

__all__ = [
    "COMPONENTS",
    "LRScale",
    "PrunerSettings",
    "RankedRecord",
    "Ranking",
    "RungDecision",
    "RungRanking",
    "RungRecord",
    "SuccessiveHalvingEnergyPruner",
    "TrialEnergy",
    "measured",
    "own_records",
    "per_epoch_and_spread",
    "rank_rung",
    "read_records",
    "report",
    "stored_pruner_settings",
    "weighted_components",
    "weighted_objective",
    "write_figures",
]
