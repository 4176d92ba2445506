"""Training code: where torch, the energy meters and Optuna meet (``SM2Objective``).

The objective in parts, one concept per module: ``_objective`` (the facade), ``_arguments``
(its argument checks), ``_data`` (the data source), ``_phases`` (a sweep, a thorough epoch,
an evaluation), ``_loop`` (the steps of one trial, :class:`PhaseResult`), ``_driver``
(:class:`StepDriver`, which advances them), ``_trial_state`` and ``_checkpoint`` (the state of a
trial and its checkpoint files), ``_energy_book`` (what a trial spent), ``_schedule`` and
``_synchronous``.
"""

from __future__ import annotations

from optuna_sm2.training._batches import PreloadedBatches
from optuna_sm2.training._driver import StepDriver
from optuna_sm2.training._loop import PhaseCallback, PhaseResult
from optuna_sm2.training._objective import SM2Objective
from optuna_sm2.training._synchronous import optimize_synchronous

__all__ = [
    "PhaseCallback",
    "PhaseResult",
    "PreloadedBatches",
    "SM2Objective",
    "StepDriver",
    "optimize_synchronous",
]
