"""Training code: where torch, the energy meters and Optuna meet (``SM2Objective``).

The objective in parts, one concept per module: ``_objective`` (the facade), ``_arguments``
(its argument checks), ``_data`` (the data source: tensors or a Dataset, preloaded or streamed),
``_samples`` (what a batch holds), ``_batches`` and ``_streamed`` (preloaded and streamed
epochs), ``_loss`` (``loss_fn`` or ``batch_loss``), ``_optimizer`` (the optimizer factory),
``_phases`` (a sweep, a thorough epoch, an evaluation), ``_loop`` (the steps of one trial,
:class:`PhaseResult`; energy booked in :class:`optuna_sm2.TrialEnergy`), ``_driver``
(:class:`StepDriver`, which advances them), ``_trial_state`` and ``_checkpoint`` (the state of a
trial and its checkpoint files), ``_schedule`` and ``_synchronous``.
"""

from __future__ import annotations

from optuna_sm2.training._batches import PreloadedBatches
from optuna_sm2.training._data import ObjectiveData, ValidBatches, check_data
from optuna_sm2.training._distributed import DistributedEnergyTracker
from optuna_sm2.training._driver import StepDriver
from optuna_sm2.training._loop import PhaseCallback, PhaseResult
from optuna_sm2.training._loss import Loss
from optuna_sm2.training._objective import SM2Objective
from optuna_sm2.training._optimizer import sgd
from optuna_sm2.training._phases import SweepSettings, evaluate, train_epoch
from optuna_sm2.training._schedule import Phase, Schedule
from optuna_sm2.training._synchronous import optimize_synchronous

__all__ = [
    "DistributedEnergyTracker",
    "Loss",
    "ObjectiveData",
    "Phase",
    "PhaseCallback",
    "PhaseResult",
    "PreloadedBatches",
    "SM2Objective",
    "Schedule",
    "StepDriver",
    "SweepSettings",
    "ValidBatches",
    "check_data",
    "evaluate",
    "optimize_synchronous",
    "sgd",
    "train_epoch",
]
