"""One trial as the report and the dashboard show it, read from its stored attributes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from optuna.trial import TrialState

from optuna_sm2._trial_attrs import TrialAttrs
from optuna_sm2._validation import finite_or_none, is_real

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from optuna_sm2.pruners import RungRecord

EnergyStatus = Literal["measured", "partly measured", "unmeasured"]


def json_float(x: float | None) -> float | None:
    """Strict JSON has no NaN or infinity: those become ``None``."""
    return x if x is None or math.isfinite(x) else None


def _json_value(x: Any) -> Any:
    """A parameter value as JSON: strings, booleans and ints as they are, other numbers as
    finite floats or ``None``, anything else as its ``repr``."""
    if x is None or isinstance(x, (str, bool, int)):
        return x
    if is_real(x):
        return json_float(float(x))
    return repr(x)


@dataclass(frozen=True)
class TrialSummary:
    """One trial as the report and the dashboard show it; a figure it lacks is ``None``.

    ``energy_total_j`` is ``None`` for an unmeasured trial (no ``sm2.energy_total_j``), never
    0; ``energy_invalid_windows`` counts the windows its totals miss. ``projected_energy_j`` is
    what the trial would have spent trained to the end of the schedule (see
    :func:`summarize_study`); ``None`` when the study has no schedule or the trial lacks the
    attributes the projection needs.
    """

    number: int
    state: str
    params: Mapping[str, Any]
    batch_size: int | None
    value: float | None
    stable_lr: float | None
    energy_per_epoch_j: float | None
    energy_per_epoch_spread: float | None
    energy_total_j: float | None
    energy_explore_j: float | None
    energy_train_j: float | None
    energy_eval_j: float | None
    energy_invalid_windows: int | None
    last_value: float | None
    last_step: int | None
    rung: int | None
    epochs_trained: int | None
    explorations: int | None
    energy_source: str | None
    projected_energy_j: float | None
    lr_window: tuple[float, float] | None = None
    lr_diverged_at: float | None = None
    resumed_from: int | None = None
    datetime_start: datetime | None = None
    datetime_complete: datetime | None = None

    @property
    def energy_status(self) -> EnergyStatus:
        """``unmeasured`` without a total, ``partly measured`` when windows are missing."""
        if self.energy_total_j is None:
            return "unmeasured"
        return "partly measured" if self.energy_invalid_windows else "measured"

    @property
    def title(self) -> str:
        """``trial <number>`` and its parameters, e.g. ``trial 3 (batch_size 64)``."""
        params = ", ".join(f"{k} {v}" for k, v in self.params.items())
        return f"trial {self.number}" + (f" ({params})" if params else "")

    def to_json(self) -> dict[str, Any]:
        """The summary as a dict of JSON values (NaN and infinities become ``None``)."""
        return {
            "number": self.number,
            "state": self.state,
            "params": dict(self.params),
            "batch_size": self.batch_size,
            "value": json_float(self.value),
            "stable_lr": self.stable_lr,
            "energy_status": self.energy_status,
            "energy_per_epoch_j": self.energy_per_epoch_j,
            "energy_per_epoch_spread": self.energy_per_epoch_spread,
            "energy_total_j": self.energy_total_j,
            "energy_explore_j": self.energy_explore_j,
            "energy_train_j": self.energy_train_j,
            "energy_eval_j": self.energy_eval_j,
            "energy_invalid_windows": self.energy_invalid_windows,
            "last_value": json_float(self.last_value),
            "last_step": self.last_step,
            "rung": self.rung,
            "epochs_trained": self.epochs_trained,
            "explorations": self.explorations,
            "energy_source": self.energy_source,
            "projected_energy_j": self.projected_energy_j,
            "lr_window": None if self.lr_window is None else list(self.lr_window),
            "lr_diverged_at": self.lr_diverged_at,
            "resumed_from": self.resumed_from,
            "datetime_start": _iso(self.datetime_start),
            "datetime_complete": _iso(self.datetime_complete),
        }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _projection(
    state: TrialState,
    retried: bool,
    total: float | None,
    per_epoch: float | None,
    explore: float | None,
    epochs: int | None,
    explorations: int | None,
    totals: tuple[int, int],
) -> float | None:
    """What a trial would have spent trained to the end; ``None`` when it cannot be told."""
    if total is None:
        return None
    if state == TrialState.COMPLETE or retried:
        return total
    train_epochs_total, explorations_total = totals
    if epochs is None or explorations is None:
        return None
    epochs_left = max(train_epochs_total - epochs, 0)
    explorations_left = max(explorations_total - explorations, 0)
    projected = total
    if epochs_left:
        if per_epoch is None:
            return None
        projected += per_epoch * epochs_left
    if explorations_left:
        if explore is None or explorations == 0:
            return None
        projected += explore / explorations * explorations_left
    return projected


BATCH_SIZE_PARAMS = ("batch_size", "per_device_train_batch_size")
"""Trial parameters that hold the batch size: SM²'s own and the Hugging Face Trainer's."""


def _batch_size(params: Mapping[str, Any]) -> int | None:
    """The first of :data:`BATCH_SIZE_PARAMS` the trial has, if it is a whole number."""
    name = next((n for n in BATCH_SIZE_PARAMS if n in params), None)
    value = None if name is None else finite_or_none(params[name])
    return int(value) if value is not None and value == int(value) else None


def summarize_trial(
    trial: FrozenTrial,
    totals: tuple[int, int] | None,
    retried: bool,
    rungs: Mapping[int, RungRecord],
) -> TrialSummary:
    held = TrialAttrs.read(trial.user_attrs)
    projected = (
        None
        if totals is None
        else _projection(
            trial.state,
            retried,
            held.energy_total_j,
            held.energy_per_epoch_j,
            held.energy_explore_j,
            held.epochs_trained,
            held.explorations,
            totals,
        )
    )
    values = trial.intermediate_values
    return TrialSummary(
        number=trial.number,
        state=trial.state.name,
        params={k: _json_value(v) for k, v in trial.params.items()},
        batch_size=_batch_size(trial.params),
        value=float(trial.values[0]) if trial.values else None,
        stable_lr=held.stable_lr,
        energy_per_epoch_j=held.energy_per_epoch_j,
        energy_per_epoch_spread=held.energy_per_epoch_spread,
        energy_total_j=held.energy_total_j,
        energy_explore_j=held.energy_explore_j,
        energy_train_j=held.energy_train_j,
        energy_eval_j=held.energy_eval_j,
        energy_invalid_windows=held.energy_invalid_windows,
        last_value=float(values[max(values)]) if values else None,
        last_step=max(values) if values else None,
        rung=max(rungs) if rungs else None,
        epochs_trained=held.epochs_trained,
        explorations=held.explorations,
        energy_source=held.energy_source,
        projected_energy_j=projected,
        lr_window=held.lr_window,
        lr_diverged_at=held.lr_diverged_at,
        resumed_from=held.resumed_from,
        datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete,
    )
