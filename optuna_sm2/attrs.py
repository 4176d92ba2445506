"""Names of what optuna-sm2 stores in a study (spec section 3)."""

from __future__ import annotations

ENERGY_PER_EPOCH_J = "sm2.energy_per_epoch_j"
"""User attr: energy (J) of one full pass over the training data, the figure the pruner ranks by.
After training epochs it is the current block's median epoch, or the mean of its epochs when one
read 0 J on a meter coarser than an epoch (:func:`~optuna_sm2.pruners.per_epoch_and_spread`);
after an exploration, the exploration's joules per sample times the training set's size."""

STABLE_LR = "sm2.stable_lr"
"""User attr: learning rate chosen by the latest exploratory sweep."""

ENERGY_TOTAL_J = "sm2.energy_total_j"
"""User attr: everything the trial spent, exploration, training and evaluation."""

ENERGY_EXPLORE_J = "sm2.energy_explore_j"
"""User attr: the exploration part of :data:`ENERGY_TOTAL_J`."""

ENERGY_SOURCE = "sm2.energy_source"
"""User attr: which meter produced the figures, e.g. ``nvml-counter`` or ``cpu-time-estimate``."""

SYSTEM_ATTR_PREFIX = "sm2:"
"""Prefix of every system attr the pruner writes (never Optuna's bare ``completed_rung_*``)."""

PRUNED_AT_EPOCH = "sm2:pruned_at_epoch"
"""System attr: the epoch at which ``SM2PruningCallback`` stopped the trainer; read by its
``check_pruned()`` in the process that called ``Trainer.fit`` (under DDP the decision is taken in
a worker process)."""

ENERGY_TRAIN_J = "sm2.energy_train_j"
"""User attr: the thorough-training part of :data:`ENERGY_TOTAL_J`."""

ENERGY_EVAL_J = "sm2.energy_eval_j"
"""User attr: the evaluation part of :data:`ENERGY_TOTAL_J`."""

EPOCHS_TRAINED = "sm2.epochs_trained"
"""User attr: thorough epochs done so far."""

EXPLORATIONS = "sm2.explorations"
"""User attr: exploratory sweeps done so far."""

LR_WINDOW = "sm2.lr_window"
"""User attr: lowest and highest LR of the window the latest sweep chose."""

LR_DIVERGED_AT = "sm2.lr_diverged_at"
"""User attr: first LR of the latest sweep whose loss was non-finite or exploded, or null."""

RESUMED_FROM = "sm2.resumed_from"
"""User attr of a retried trial: the trial whose checkpoint it resumed from."""

SCHEDULE = "sm2.schedule"
"""Study user attr: the schedule of the study's ``SM2Objective``; marks a study SM² wrote."""

ENERGY_INVALID_WINDOWS = "sm2.energy_invalid_windows"
"""User attr: how many energy windows of the trial could not be measured (a count, always stored).

A trial with no valid window stores no :data:`ENERGY_TOTAL_J` (the key is absent): unmeasured,
never 0 J."""

ENERGY_PER_EPOCH_SPREAD = "sm2.energy_per_epoch_spread"
"""User attr: how much the figures behind :data:`ENERGY_PER_EPOCH_J` varied, as the relative
half-range ``(max - min) / (2 * figure)`` of the block's measured epochs, ``figure`` being
:data:`ENERGY_PER_EPOCH_J` (their median, or their mean on a meter coarser than an epoch); null
with one measured epoch."""

ENERGY_PER_EPOCH_RESOLUTION = "sm2.energy_per_epoch_resolution"
"""User attr: how far :data:`ENERGY_PER_EPOCH_J` may be off because the meter advances in steps,
relative to it: ``p / (s - p)`` for a meter stepping every ``p`` seconds and the block's median
training window of ``s`` seconds, at most 1 (also when ``s <= 2 p``); 0 for a meter that
advances continuously. The robust ranking ties energies within it."""

PRUNER = "sm2.pruner"
"""Study user attr: the settings of the study's ``SuccessiveHalvingEnergyPruner`` as JSON, written
once when it first decides; the report and the dashboard read them."""

LEASE = "sm2:lease"
"""Trial system attr: the lease of the worker running the trial on a journal storage (its host,
machine, pid and the pid's start time, when taken and last renewed); see docs/reliability.md."""

SYNCHRONOUS_LEASE = "sm2:synchronous_lease"
"""Study system attr: the lease of the ``optimize_synchronous`` run that holds the study (its
run id, the process, when taken and last renewed, the renewal interval, whether it was released);
see docs/reliability.md."""

SYNCHRONOUS_DECIDED = "sm2:synchronous_decided"
"""Study system attr: the last rung whose every decision ``optimize_synchronous`` has told (the
losers PRUNED); a resumed run decides only the rungs after it."""
