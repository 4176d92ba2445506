"""A study read as configurations: each trial with the retries that continue it.

A configuration is one trial and the trials that retry it (Optuna's
``RetryHeartbeatStaleTrialCallback`` chain: ``failed_trial``, ``retry_history``). Its *current*
trial is the last of the chain; the configuration is finished when that one is (COMPLETE,
PRUNED, or FAIL without a retry). ``optimize_synchronous`` counts, resumes and decides
configurations, not trials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_sm2 import _compat
from optuna_sm2._validation import is_int
from optuna_sm2.pruners import own_records


@dataclass
class Configuration:
    """One configuration of a study: its trials, oldest first."""

    trials: list[FrozenTrial] = field(default_factory=list)

    @property
    def number(self) -> int:
        """The number of its first trial, by which it is named."""
        return self.trials[0].number

    @property
    def current(self) -> FrozenTrial:
        """Its last trial: the one that runs it, or ended it."""
        return self.trials[-1]

    @property
    def finished(self) -> bool:
        return self.current.state.is_finished()

    @property
    def batch_size(self) -> Any:
        """The batch size it runs (a parameter, or the one it was enqueued with), or ``None``."""
        for trial in reversed(self.trials):
            if "batch_size" in trial.params:
                return trial.params["batch_size"]
            fixed = trial.system_attrs.get("fixed_params")
            if isinstance(fixed, Mapping) and "batch_size" in fixed:
                return fixed["batch_size"]
        return None

    def holder(self, rung: int) -> FrozenTrial | None:
        """The trial holding the configuration's own record at ``rung`` (the first that
        recorded it), or ``None``."""
        for trial in self.trials:
            if rung in own_records(trial.number, trial.system_attrs):
                return trial
        return None

    def stale(self) -> list[FrozenTrial]:
        """Its RUNNING trials other than the current one: left by a run that died between
        queueing a trial's retry and failing the trial."""
        return [t for t in self.trials[:-1] if t.state == TrialState.RUNNING]


def configuration_number(trial: FrozenTrial) -> int:
    """The number of the first trial of ``trial``'s configuration: the trial it retries (its
    ``retry_history`` starts with it), else its own."""
    try:
        history = _compat.retry_history(trial)
    except TypeError:  # a malformed retry_history: the trial is its own configuration
        return trial.number
    return int(history[0]) if history and is_int(history[0]) else trial.number


def read_configurations(study: optuna.Study) -> dict[int, Configuration]:
    """The study's configurations by number, each with its trials in order."""
    trials = study.get_trials(deepcopy=False)
    numbers = {t.number for t in trials}
    configurations: dict[int, Configuration] = {}
    for trial in trials:
        first = configuration_number(trial)
        first = first if first in numbers else trial.number
        configurations.setdefault(first, Configuration()).trials.append(trial)
    for configuration in configurations.values():
        configuration.trials.sort(key=lambda t: t.number)
    return configurations
