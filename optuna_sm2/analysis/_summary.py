"""What an SM² study spent: per-trial energy, totals and the saving against training everything.

Reads only the keys of ``docs/stored-data.md``; imports neither torch nor the training code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from optuna_sm2 import _compat
from optuna_sm2.attrs import (
    ENERGY_EXPLORE_J,
    ENERGY_PER_EPOCH_J,
    ENERGY_SOURCE,
    ENERGY_TOTAL_J,
    EPOCHS_TRAINED,
    EXPLORATIONS,
    RESUMED_FROM,
    SCHEDULE,
    STABLE_LR,
)
from optuna_sm2.pruners._records import own_records

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

J_PER_WH = 3600.0


def _number(x: Any) -> float | None:
    """``x`` as a finite float, or ``None`` when it is missing or not a finite number."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _count(x: Any) -> int | None:
    """``x`` as a non-negative int (``3`` or ``3.0``), else ``None``."""
    value = _number(x)
    return int(value) if value is not None and value >= 0 and value == int(value) else None


def _json_float(x: float | None) -> float | None:
    """Strict JSON has no NaN or infinity: those become ``None``."""
    return x if x is None or math.isfinite(x) else None


def _last_value(trial: FrozenTrial) -> float | None:
    if not trial.intermediate_values:
        return None
    return float(trial.intermediate_values[max(trial.intermediate_values)])


def _has_sm2_data(trial: FrozenTrial) -> bool:
    return any(k.startswith("sm2.") for k in trial.user_attrs) or any(
        k.startswith("sm2:") for k in trial.system_attrs
    )


@dataclass(frozen=True)
class TrialSummary:
    """One trial as the report shows it; a figure the trial does not hold is ``None``.

    ``projected_energy_j`` is what the trial would have spent trained to the end of the schedule
    (see :func:`summarize_study`); ``None`` when the study has no schedule or the trial lacks the
    attributes the projection needs.
    """

    number: int
    state: str
    batch_size: int | None
    stable_lr: float | None
    energy_per_epoch_j: float | None
    energy_total_j: float | None
    energy_explore_j: float | None
    last_value: float | None
    last_step: int | None
    rung: int | None
    epochs_trained: int | None
    explorations: int | None
    energy_source: str | None
    projected_energy_j: float | None

    def to_json(self) -> dict[str, Any]:
        """The summary as a dict of JSON values (NaN and infinities become ``None``)."""
        return {
            "number": self.number,
            "state": self.state,
            "batch_size": self.batch_size,
            "stable_lr": self.stable_lr,
            "energy_per_epoch_j": self.energy_per_epoch_j,
            "energy_total_j": self.energy_total_j,
            "energy_explore_j": self.energy_explore_j,
            "last_value": _json_float(self.last_value),
            "last_step": self.last_step,
            "rung": self.rung,
            "epochs_trained": self.epochs_trained,
            "explorations": self.explorations,
            "energy_source": self.energy_source,
            "projected_energy_j": self.projected_energy_j,
        }


@dataclass(frozen=True)
class StudyReport:
    """What a study spent, from the attributes of ``docs/stored-data.md``.

    Energies are in joules (``_wh`` in watt-hours). A figure that cannot be computed from what
    the study holds is ``None``. ``notes`` says, in words, what was left out and why.
    """

    study_name: str
    direction: str
    schedule: Mapping[str, Any] | None
    trials: tuple[TrialSummary, ...]
    total_energy_j: float
    explore_energy_j: float
    pruned_energy_j: float
    projected_energy_j: float | None
    energy_sources: tuple[str, ...]
    unprojected_trials: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def total_energy_wh(self) -> float:
        return self.total_energy_j / J_PER_WH

    @property
    def exploration_share(self) -> float | None:
        """Exploration energy / total energy, ``None`` when nothing was spent."""
        return self.explore_energy_j / self.total_energy_j if self.total_energy_j > 0 else None

    @property
    def saving_j(self) -> float | None:
        """Projected energy minus what was actually spent."""
        if self.projected_energy_j is None:
            return None
        return self.projected_energy_j - self.total_energy_j

    @property
    def saving_pct(self) -> float | None:
        """:attr:`saving_j` as a percentage of the projected energy."""
        if self.saving_j is None or not self.projected_energy_j:
            return None
        return 100.0 * self.saving_j / self.projected_energy_j

    @property
    def is_estimate(self) -> bool:
        """Whether any figure comes from an estimating meter (a source containing ``estimate``)."""
        return any("estimate" in source for source in self.energy_sources)

    @property
    def is_simulated(self) -> bool:
        """Whether any figure comes from a simulated meter (a source containing ``simulated``)."""
        return any("simulated" in source for source in self.energy_sources)

    def to_json(self) -> dict[str, Any]:
        """The report as a dict of JSON values, derived figures included."""
        return {
            "study_name": self.study_name,
            "direction": self.direction,
            "schedule": None if self.schedule is None else dict(self.schedule),
            "energy_sources": list(self.energy_sources),
            "is_estimate": self.is_estimate,
            "is_simulated": self.is_simulated,
            "total_energy_j": self.total_energy_j,
            "total_energy_wh": self.total_energy_wh,
            "explore_energy_j": self.explore_energy_j,
            "exploration_share": self.exploration_share,
            "pruned_energy_j": self.pruned_energy_j,
            "projected_energy_j": self.projected_energy_j,
            "saving_j": self.saving_j,
            "saving_pct": self.saving_pct,
            "unprojected_trials": list(self.unprojected_trials),
            "notes": list(self.notes),
            "trials": [t.to_json() for t in self.trials],
        }


def _schedule_totals(schedule: Any) -> tuple[int, int] | None:
    """``(train_epochs_total, explorations_total)`` of a schedule, or ``None``."""
    if not isinstance(schedule, Mapping):
        return None
    epochs = _count(schedule.get("train_epochs_total"))
    explorations = _count(schedule.get("explorations_total"))
    return None if epochs is None or explorations is None else (epochs, explorations)


def _retried(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials that a later trial retried (Optuna's heartbeat or SM²'s resume)."""
    retried: set[int] = set()
    for t in trials:
        for ref in (*_compat.retry_history(t), t.user_attrs.get(RESUMED_FROM)):
            number = _count(ref)
            if number is not None and number != t.number:
                retried.add(number)
    return retried


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


def _batch_size(params: Mapping[str, Any]) -> int | None:
    value = _number(params.get("batch_size"))
    return int(value) if value is not None and value == int(value) else None


def _summarize_trial(
    trial: FrozenTrial, totals: tuple[int, int] | None, retried: bool
) -> TrialSummary:
    attrs = trial.user_attrs
    total = _number(attrs.get(ENERGY_TOTAL_J))
    per_epoch = _number(attrs.get(ENERGY_PER_EPOCH_J))
    explore = _number(attrs.get(ENERGY_EXPLORE_J))
    epochs = _count(attrs.get(EPOCHS_TRAINED))
    explorations = _count(attrs.get(EXPLORATIONS))
    source = attrs.get(ENERGY_SOURCE)
    rungs = own_records(trial.number, trial.system_attrs)
    projected = (
        None
        if totals is None
        else _projection(
            trial.state, retried, total, per_epoch, explore, epochs, explorations, totals
        )
    )
    return TrialSummary(
        number=trial.number,
        state=trial.state.name,
        batch_size=_batch_size(trial.params),
        stable_lr=_number(attrs.get(STABLE_LR)),
        energy_per_epoch_j=per_epoch,
        energy_total_j=total,
        energy_explore_j=explore,
        last_value=_last_value(trial),
        last_step=max(trial.intermediate_values) if trial.intermediate_values else None,
        rung=max(rungs) if rungs else None,
        epochs_trained=epochs,
        explorations=explorations,
        energy_source=source if isinstance(source, str) else None,
        projected_energy_j=projected,
    )


def _direction(study: optuna.Study) -> str:
    return ",".join(d.name.lower() for d in study.directions)


def _numbers(trials: list[int]) -> str:
    return ", ".join(str(n) for n in trials)


def summarize_study(study: optuna.Study) -> StudyReport:
    """Summarize what the trials of ``study`` spent, and what training them all would have.

    Per trial the report reads the user attributes of ``docs/stored-data.md`` and the highest
    rung ``r`` whose ``sm2:rung_<r>`` system attribute is the trial's own (records a heartbeat
    retry inherited from another trial do not count). Per study:

    - total energy: the sum of ``sm2.energy_total_j`` over all trials (a trial without it
      counts 0); the exploration share is the sum of ``sm2.energy_explore_j`` over that total;
    - pruned energy: the total of the trials in state ``PRUNED``;
    - projected energy, what every configuration would have spent trained to the end: a
      ``COMPLETE`` trial counts its actual total; any other trial counts

          total + energy_per_epoch_j * (train_epochs_total - epochs_trained)
                + energy_explore_j / explorations * (explorations_total - explorations)

      with ``train_epochs_total`` and ``explorations_total`` from the study user attribute
      ``sm2.schedule`` (negative remainders count 0). A trial that a later trial retried
      (named in its Optuna ``retry_history`` or by ``sm2.resumed_from``) counts only its
      actual total, since the retry carries its configuration on. A trial that lacks a figure the
      projection needs (for instance ``sm2.explorations`` is 0 while explorations remain)
      counts its actual total and is listed in ``unprojected_trials``, so the saving is then
      understated, never overstated. Without ``sm2.schedule`` there is no projection;
    - the saving is the projected energy minus the total.

    Args:
        study: Any study holding SM² data: written by ``SM2Objective`` (with ``sm2.schedule``)
            or by a user of :func:`optuna_sm2.report` and the pruner (trial attributes only).

    Raises:
        ValueError: the study holds no SM² data at all.

    Example:
        >>> import optuna
        >>> from optuna_sm2.analysis._summary import summarize_study
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study()
        >>> study.set_user_attr("sm2.schedule", {"train_epochs_total": 4, "explorations_total": 2})
        >>> attrs = {"sm2.energy_total_j": 30.0, "sm2.energy_explore_j": 10.0,
        ...          "sm2.energy_per_epoch_j": 20.0, "sm2.epochs_trained": 1,
        ...          "sm2.explorations": 1, "sm2.energy_source": "simulated"}
        >>> study.add_trial(optuna.trial.create_trial(
        ...     state=optuna.trial.TrialState.PRUNED, user_attrs=attrs))
        >>> summary = summarize_study(study)
        >>> summary.total_energy_j, summary.projected_energy_j  # 30 + 20 * 3 + 10 / 1 * 1
        (30.0, 100.0)
        >>> summary.saving_pct
        70.0
    """
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    schedule = study.user_attrs.get(SCHEDULE)
    if schedule is None and not any(_has_sm2_data(t) for t in trials):
        raise ValueError(
            f"study {study.study_name!r} holds no SM² data: no {SCHEDULE} study attribute and "
            "no sm2.* trial attributes (was it run with optuna_sm2.report or SM2Objective?)"
        )
    notes: list[str] = []
    totals = _schedule_totals(schedule)
    if schedule is None:
        notes.append(
            f"no {SCHEDULE}: the study was not written by SM2Objective, so there is no "
            "projection of what training every configuration to the end would have spent"
        )
    elif totals is None:
        notes.append(f"{SCHEDULE} lacks train_epochs_total or explorations_total: no projection")
    retried = _retried(trials)
    summaries = tuple(_summarize_trial(t, totals, t.number in retried) for t in trials)

    total = sum(s.energy_total_j or 0.0 for s in summaries)
    explore = sum(s.energy_explore_j or 0.0 for s in summaries)
    pruned = sum(s.energy_total_j or 0.0 for s in summaries if s.state == TrialState.PRUNED.name)
    without_energy = [s.number for s in summaries if s.energy_total_j is None]
    if without_energy:
        notes.append(f"trials without {ENERGY_TOTAL_J} count 0 J: {_numbers(without_energy)}")

    projected: float | None = None
    unprojected: list[int] = []
    if totals is not None:
        projected = 0.0
        for s in summaries:
            if s.projected_energy_j is not None:
                projected += s.projected_energy_j
            elif s.energy_total_j is not None:
                projected += s.energy_total_j
                unprojected.append(s.number)
        if unprojected:
            notes.append(
                "trials lacking what the projection needs count their actual energy in it "
                f"(the saving is understated): {_numbers(unprojected)}"
            )
    sources = sorted({s.energy_source for s in summaries if s.energy_source is not None})
    return StudyReport(
        study_name=study.study_name,
        direction=_direction(study),
        schedule=dict(schedule) if isinstance(schedule, Mapping) else None,
        trials=summaries,
        total_energy_j=total,
        explore_energy_j=explore,
        pruned_energy_j=pruned,
        projected_energy_j=projected,
        energy_sources=tuple(sources),
        unprojected_trials=tuple(unprojected),
        notes=tuple(notes),
    )
