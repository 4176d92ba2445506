"""Training code: where torch, the energy meters and Optuna meet (``SM2Objective``)."""

from __future__ import annotations

from optuna_sm2.training._batches import PreloadedBatches
from optuna_sm2.training._objective import SM2Objective
from optuna_sm2.training._synchronous import optimize_synchronous

__all__ = ["PreloadedBatches", "SM2Objective", "optimize_synchronous"]
