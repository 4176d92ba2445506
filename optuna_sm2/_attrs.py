"""Names of what optuna-sm2 stores in a study (spec section 3)."""

from __future__ import annotations

ENERGY_PER_EPOCH_J = "sm2.energy_per_epoch_j"
"""User attr: energy (J) of the latest training window, scaled to one full pass over the data."""

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
