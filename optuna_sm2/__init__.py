"""optuna-sm2: energy-aware hyperparameter search for Optuna (SM², arXiv 2412.08526).

The core (the pruner, ``report``, ``TrialEnergy``, the ranking, the meters) never imports torch.
The names that train (``SM2Objective``, ``explore_lr``, ...) load torch when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from optuna_sm2 import attrs
from optuna_sm2.energy import EnergyMeter, EnergyTracker, auto_meter
from optuna_sm2.pruners import (
    SuccessiveHalvingEnergyPruner,
    TrialEnergy,
    report,
    weighted_objective,
)

if TYPE_CHECKING:
    from optuna_sm2.lr import LRExploration, explore_lr
    from optuna_sm2.training import (
        PhaseResult,
        PreloadedBatches,
        SM2Objective,
        optimize_synchronous,
    )

_LAZY = {
    "LRExploration": "optuna_sm2.lr",
    "explore_lr": "optuna_sm2.lr",
    "PhaseResult": "optuna_sm2.training",
    "PreloadedBatches": "optuna_sm2.training",
    "SM2Objective": "optuna_sm2.training",
    "optimize_synchronous": "optuna_sm2.training",
}
"""Torch-using names, imported from their module when first used."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise ImportError(
            f"optuna_sm2.{name} trains models and needs PyTorch: install the build for your "
            "hardware (https://pytorch.org), or `pip install 'optuna-sm2[torch]'`."
        ) from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "EnergyMeter",
    "EnergyTracker",
    "LRExploration",
    "PhaseResult",
    "PreloadedBatches",
    "SM2Objective",
    "SuccessiveHalvingEnergyPruner",
    "TrialEnergy",
    "attrs",
    "auto_meter",
    "explore_lr",
    "optimize_synchronous",
    "report",
    "weighted_objective",
]
