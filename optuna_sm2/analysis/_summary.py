"""What an SM² study spent and how it decided: per-trial energy, totals, the saving against
training everything, and every rung ranked with the pruner's own rule.

Reads only the keys of ``docs/stored-data.md``; imports neither torch nor the training code.
The report and every dashboard figure and note are drawn from :class:`StudyReport` alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from optuna.trial import TrialState

from optuna_sm2 import _compat
from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2._validation import count, is_int
from optuna_sm2.analysis._format import format_trials, plural
from optuna_sm2.analysis._rungs import RungSummary, ranked_by_note, summarize_rungs
from optuna_sm2.analysis._sources import source_kind
from optuna_sm2.analysis._trial import TrialSummary, summarize_trial
from optuna_sm2.attrs import (
    ENERGY_INVALID_WINDOWS,
    ENERGY_TOTAL_J,
    PRUNER,
    SCHEDULE,
)
from optuna_sm2.pruners import (
    LRScale,
    PrunerSettings,
    RungRecord,
    read_records,
    stored_pruner_settings,
)

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

J_PER_WH = 3600.0

SettingsOrigin = Literal["study", "arguments", "defaults"]


def _has_sm2_data(trial: FrozenTrial) -> bool:
    return any(k.startswith("sm2.") for k in trial.user_attrs) or any(
        k.startswith("sm2:") for k in trial.system_attrs
    )


@dataclass(frozen=True)
class StudyReport:
    """What a study spent and how it decided, from the attributes of ``docs/stored-data.md``.

    Energies are in joules (``_wh`` in watt-hours). The totals sum the *measured* trials
    (those holding ``sm2.energy_total_j``); :attr:`unmeasured_trials` are left out of them and
    of the saving, never counted as 0 J (``total_energy_j`` is 0.0 when no trial is measured;
    :meth:`to_json` then gives ``null``). The saving compares :attr:`projected_energy_j` with
    :attr:`saving_basis_j`, both over the finished, measured trials: a running trial is still
    spending and is listed in :attr:`running_trials` instead. A figure that cannot be computed
    from what the study holds is ``None``; ``notes`` says, in words, what was left out and why.
    """

    study_name: str
    direction: Literal["maximize", "minimize"]
    schedule: Mapping[str, Any] | None
    trials: tuple[TrialSummary, ...]
    total_energy_j: float
    explore_energy_j: float
    pruned_energy_j: float
    projected_energy_j: float | None
    energy_sources: tuple[str, ...]
    unprojected_trials: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default=())
    metric_name: str = "objective value"
    pruner: PrunerSettings = field(default_factory=PrunerSettings)
    pruner_origin: SettingsOrigin = "defaults"
    rungs: tuple[RungSummary, ...] = ()
    saving_basis_j: float | None = None
    unmeasured_trials: tuple[int, ...] = ()
    partly_measured_trials: tuple[int, ...] = ()
    running_trials: tuple[int, ...] = ()
    best_trial: int | None = None

    @property
    def measured_trials(self) -> int:
        """How many trials hold an energy total."""
        return sum(t.energy_total_j is not None for t in self.trials)

    @property
    def total_energy_wh(self) -> float:
        return self.total_energy_j / J_PER_WH

    @property
    def exploration_share(self) -> float | None:
        """Exploration energy / total energy, ``None`` when nothing was spent."""
        return self.explore_energy_j / self.total_energy_j if self.total_energy_j > 0 else None

    @property
    def saving_j(self) -> float | None:
        """Projected energy minus what the same trials actually spent."""
        if self.projected_energy_j is None or self.saving_basis_j is None:
            return None
        return self.projected_energy_j - self.saving_basis_j

    @property
    def saving_pct(self) -> float | None:
        """:attr:`saving_j` as a percentage of the projected energy."""
        if self.saving_j is None or not self.projected_energy_j:
            return None
        return 100.0 * self.saving_j / self.projected_energy_j

    @property
    def energy_kinds(self) -> tuple[str, ...]:
        """:func:`~optuna_sm2.analysis.source_kind` of each of :attr:`energy_sources`."""
        return tuple(source_kind(s) for s in self.energy_sources)

    @property
    def is_estimate(self) -> bool:
        """Whether any figure is an estimate (``cpu-time-estimate``, ``nvml-power-estimate``)."""
        return "estimate" in self.energy_kinds

    @property
    def is_simulated(self) -> bool:
        """Whether any figure comes from a simulated meter."""
        return "simulated" in self.energy_kinds

    def describe_pruner(self) -> str:
        """The settings the rungs are ranked with and where they come from, in one line."""
        origin = {
            "study": f"stored in the study by optuna-sm2 {self.pruner.version}",
            "arguments": "not stored in the study: α/β as given, the rest the pruner's defaults",
            "defaults": "not stored in the study: the pruner's defaults",
        }[self.pruner_origin]
        return f"{self.pruner.describe()} ({origin})"

    def trial(self, number: int) -> TrialSummary:
        """The summary of trial ``number``; ``KeyError`` if the study has none."""
        for t in self.trials:
            if t.number == number:
                return t
        raise KeyError(number)

    def to_json(self) -> dict[str, Any]:
        """The report as a dict of JSON values, derived figures included."""
        measured = self.measured_trials > 0
        return {
            "study_name": self.study_name,
            "direction": self.direction,
            "metric_name": self.metric_name,
            "schedule": None if self.schedule is None else dict(self.schedule),
            "pruner": self.pruner.to_json(),
            "pruner_origin": self.pruner_origin,
            "energy_sources": list(self.energy_sources),
            "is_estimate": self.is_estimate,
            "is_simulated": self.is_simulated,
            "measured_trials": self.measured_trials,
            "total_energy_j": self.total_energy_j if measured else None,
            "total_energy_wh": self.total_energy_wh if measured else None,
            "explore_energy_j": self.explore_energy_j if measured else None,
            "exploration_share": self.exploration_share,
            "pruned_energy_j": self.pruned_energy_j if measured else None,
            "projected_energy_j": self.projected_energy_j,
            "saving_basis_j": self.saving_basis_j,
            "saving_j": self.saving_j,
            "saving_pct": self.saving_pct,
            "unprojected_trials": list(self.unprojected_trials),
            "unmeasured_trials": list(self.unmeasured_trials),
            "partly_measured_trials": list(self.partly_measured_trials),
            "running_trials": list(self.running_trials),
            "best_trial": self.best_trial,
            "notes": list(self.notes),
            "trials": [t.to_json() for t in self.trials],
            "rungs": [r.to_json() for r in self.rungs],
        }


def _schedule_totals(schedule: Any) -> tuple[int, int] | None:
    """``(train_epochs_total, explorations_total)`` of a schedule, or ``None``."""
    if not isinstance(schedule, Mapping):
        return None
    epochs = count(schedule.get("train_epochs_total"))
    explorations = count(schedule.get("explorations_total"))
    return None if epochs is None or explorations is None else (epochs, explorations)


def _retries(trials: list[FrozenTrial]) -> dict[int, tuple[int, ...]]:
    """For each trial that a later trial retried (Optuna's heartbeat or SM²'s resume), the
    numbers of the trials that retry it, in order: the last carries its configuration on."""
    retries: dict[int, set[int]] = {}
    for t in trials:
        resumed_from = trial_attrs.RESUMED_FROM.read(t.user_attrs)
        for number in (*map(count, _compat.retry_history(t)), resumed_from):
            if number is not None and number != t.number:
                retries.setdefault(number, set()).add(t.number)
    return {number: tuple(sorted(by)) for number, by in retries.items()}


def _configuration_records(
    number: int,
    held: Mapping[int, Mapping[int, RungRecord]],
    retries: Mapping[int, tuple[int, ...]],
) -> dict[int, RungRecord]:
    """The rung records of trial ``number``'s configuration up to it: those of the trials it
    retries, then its own."""
    records: dict[int, RungRecord] = {}
    for retried in sorted(n for n, by in retries.items() if number in by):
        records.update(held.get(retried, {}))
    records.update(held[number])
    return records


def _direction(study: optuna.Study) -> Literal["maximize", "minimize"]:
    if len(study.directions) != 1:
        raise ValueError(
            f"study {study.study_name!r} has {len(study.directions)} objectives; SM² studies "
            "are single-objective"
        )
    return "maximize" if study.direction.name == "MAXIMIZE" else "minimize"


def _metric_name(study: optuna.Study, schedule: Any) -> str:
    name = schedule.get("metric_name") if isinstance(schedule, Mapping) else None
    if isinstance(name, str) and name:
        return name
    names = study.metric_names
    return names[0] if names else "objective value"


@dataclass(frozen=True)
class _Gaps:
    """What a summary could not read, or did not use as given: the data its notes are worded
    from (:func:`_notes`), next to what :class:`StudyReport` holds itself."""

    schedule_missing: bool
    """The study has no ``sm2.schedule`` (a schedule without its totals is not missing)."""
    has_rungs: bool
    """Some trial holds rung records: only then is it said what they are ranked with."""
    pruner_unreadable: str | None
    """Why the stored ``sm2.pruner`` cannot be read, ``None`` when it can or is absent."""
    overrides: tuple[str, ...]
    """The names of the settings given as arguments (``alpha``, ``beta``, ``lr_scale``)."""
    overrides_ignored: bool
    """The study stores settings that differ from those given, and they win."""
    malformed: tuple[tuple[int, tuple[str, ...]], ...]
    """``(trial number, its malformed rung records)``, left out of the rankings."""


def _pruner_settings(
    study: optuna.Study, overrides: Mapping[str, Any]
) -> tuple[PrunerSettings, SettingsOrigin, str | None, bool]:
    """The study's stored pruner settings, else the defaults with ``overrides`` applied; where
    they came from, why the stored ones cannot be read (or ``None``), and whether overrides
    that differ from the stored ones were ignored."""
    given = {k: v for k, v in overrides.items() if v is not None}
    unreadable = None
    try:
        stored = stored_pruner_settings(study)
    except ValueError as exc:
        unreadable, stored = str(exc), None
    if stored is not None:
        return stored, "study", None, any(getattr(stored, k) != v for k, v in given.items())
    settings = replace(PrunerSettings(), **given).checked()
    return settings, "arguments" if given else "defaults", unreadable, False


def _projection(
    measured: Sequence[TrialSummary], running: Sequence[int]
) -> tuple[float, float, tuple[int, ...]]:
    """``(projected, basis, unprojected)`` over the finished, measured trials: what training
    them all to the end would have spent, what they spent, and the trials counted at their
    actual energy for lack of a figure the projection needs."""
    projected = basis = 0.0
    unprojected: list[int] = []
    for s in measured:
        if s.number in running:
            continue
        basis += s.energy_total_j or 0.0
        if s.projected_energy_j is not None:
            projected += s.projected_energy_j
        else:
            projected += s.energy_total_j or 0.0
            unprojected.append(s.number)
    return projected, basis, tuple(unprojected)


def _notes(report: StudyReport, gaps: _Gaps) -> tuple[str, ...]:
    """What ``report`` left out and why, in words, from its figures and ``gaps``."""
    notes: list[str] = []
    given = ", ".join(gaps.overrides)
    if gaps.has_rungs and gaps.pruner_unreadable is not None:
        notes.append(
            f"{PRUNER} cannot be read ({gaps.pruner_unreadable}); the rungs are ranked without it"
        )
    if gaps.has_rungs and gaps.overrides_ignored:
        notes.append(
            f"the study stores its pruner's settings ({PRUNER}); the rungs are ranked with "
            f"them, not with the {given} given"
        )
    elif gaps.has_rungs and report.pruner_origin != "study":
        ranked_with = (
            f"the {given} given and the pruner's defaults"
            if given
            else "the pruner's defaults (give α and β to rank with the ones it ran with)"
        )
        notes.append(
            f"the study does not store its pruner's settings ({PRUNER}): the rungs are ranked "
            f"with {ranked_with}"
        )
    if gaps.schedule_missing:
        notes.append(
            f"no {SCHEDULE}: the study was not written by SM2Objective, so there is no "
            "projection of what training every configuration to the end would have spent"
        )
    elif report.projected_energy_j is None:
        notes.append(f"{SCHEDULE} lacks train_epochs_total or explorations_total: no projection")
    if gaps.malformed:
        trials = "; ".join(f"{n} ({', '.join(records)})" for n, records in gaps.malformed)
        notes.append(f"malformed rung records, left out of the rankings: trial {trials}")
    if report.unmeasured_trials:
        notes.append(
            f"unmeasured trials (no {ENERGY_TOTAL_J}), left out of the totals and the saving: "
            f"{format_trials(report.unmeasured_trials)}"
        )
    if report.partly_measured_trials:
        partly = set(report.partly_measured_trials)
        windows = ", ".join(
            f"{t.number} ({plural(t.energy_invalid_windows or 0, 'window')})"
            for t in report.trials
            if t.number in partly
        )
        notes.append(
            "partly measured trials, whose totals miss the windows that could not be measured "
            f"({ENERGY_INVALID_WINDOWS}; the totals are lower bounds): {windows}"
        )
    if report.unprojected_trials:
        notes.append(
            "trials lacking what the projection needs count their actual energy in it "
            f"(the saving is understated): {format_trials(report.unprojected_trials)}"
        )
    if report.projected_energy_j is not None and report.running_trials:
        notes.append(
            "running trials, left out of the projection and the saving (they are still "
            f"spending; their energy so far is in the total): "
            f"{format_trials(report.running_trials)}"
        )
    ranked_by = ranked_by_note(report.rungs)
    return (*notes, ranked_by) if ranked_by is not None else tuple(notes)


def _best_trial(
    trials: Sequence[TrialSummary], direction: Literal["maximize", "minimize"]
) -> int | None:
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE.name and t.value is not None and math.isfinite(t.value)
    ]
    if not complete:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    return max(complete, key=lambda t: (sign * (t.value or 0.0), -t.number)).number


def summarize_study(
    study: optuna.Study,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    lr_scale: LRScale | None = None,
) -> StudyReport:
    """Summarize what the trials of ``study`` spent, what training them all would have, and
    how each rung was ranked.

    Per trial the report reads the user attributes of ``docs/stored-data.md`` and the highest
    rung ``r`` its configuration recorded up to it: an ``sm2:rung_<r>`` system attribute that
    is the trial's own or one of the trials it retries (a retry, resumed from its checkpoint,
    goes on from the rung its predecessor reached; a malformed record is left out, with a
    note). Per study:

    - total energy: the sum of ``sm2.energy_total_j`` over the measured trials. A trial without
      it is *unmeasured*: listed in ``unmeasured_trials`` and a note, never counted as 0 J. A
      trial whose ``sm2.energy_invalid_windows`` is above 0 is *partly measured*: its total
      misses those windows (a lower bound) and the notes say how many. The exploration share
      is the sum of ``sm2.energy_explore_j`` over the total;
    - pruned energy: the total of the measured trials in state ``PRUNED``;
    - projected energy, what every configuration would have spent trained to the end, over the
      finished, measured trials (a running trial is still spending: it is listed in
      ``running_trials``, and the saving is not computed over it): a ``COMPLETE`` trial counts
      its actual total; any other trial counts

          total + energy_per_epoch_j * (train_epochs_total - epochs_trained)
                + energy_explore_j / explorations * (explorations_total - explorations)

      with ``train_epochs_total`` and ``explorations_total`` from the study user attribute
      ``sm2.schedule`` (negative remainders count 0). A trial that a later trial retried
      (named in its Optuna ``retry_history`` or by ``sm2.resumed_from``) counts only its
      actual total, since the retry carries its configuration on. A trial that lacks a figure the
      projection needs (for instance ``sm2.explorations`` is 0 while explorations remain)
      counts its actual total and is listed in ``unprojected_trials``, so the saving is then
      understated, never overstated. Without ``sm2.schedule`` there is no projection;
    - the saving is the projected energy minus the actual total of the same trials;
    - the rungs: each competitor with the decision the pruner stored in its record when it
      decided (:class:`~optuna_sm2.analysis.RungEntry`); records without one are ranked now by
      :func:`optuna_sm2.pruners.rank_rung` with the pruner settings the study stores
      (``sm2.pruner``); for a study that stores none, with ``alpha``, ``beta`` and
      ``lr_scale`` where given and the pruner's defaults for the rest.

    Args:
        study: Any study holding SM² data: written by ``SM2Objective`` (with ``sm2.schedule``)
            or by a user of :func:`optuna_sm2.report` and the pruner (trial attributes only).
        alpha: Eq. 2's α for a study that does not store its pruner's settings; ignored
            (with a note) for one that does.
        beta: Eq. 2's β, likewise.
        lr_scale: ``"log"`` or ``"linear"``, likewise.

    Raises:
        ValueError: the study holds no SM² data at all, is multi-objective, or an override is
            out of its range.

    Example:
        >>> import optuna
        >>> from optuna_sm2.analysis import summarize_study
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
    direction = _direction(study)
    read = {t.number: read_records(t.number, t.system_attrs) for t in trials}
    held = {n: r.records for n, r in read.items()}
    overrides = {"alpha": alpha, "beta": beta, "lr_scale": lr_scale}
    settings, origin, unreadable, ignored = _pruner_settings(study, overrides)
    totals = _schedule_totals(schedule)
    retries = _retries(trials)
    summaries = tuple(
        summarize_trial(
            t, totals, t.number in retries, _configuration_records(t.number, held, retries)
        )
        for t in trials
    )
    measured = [s for s in summaries if s.energy_total_j is not None]
    running = tuple(
        s.number
        for s in summaries
        if s.state in (TrialState.RUNNING.name, TrialState.WAITING.name)
    )
    projected, basis, unprojected = (
        _projection(measured, running) if totals is not None else (None, None, ())
    )
    schedule_steps = schedule.get("rung_steps") if isinstance(schedule, Mapping) else None
    report = StudyReport(
        study_name=study.study_name,
        direction=direction,
        schedule=dict(schedule) if isinstance(schedule, Mapping) else None,
        trials=summaries,
        total_energy_j=sum(s.energy_total_j or 0.0 for s in measured),
        explore_energy_j=sum(s.energy_explore_j or 0.0 for s in measured),
        pruned_energy_j=sum(
            s.energy_total_j or 0.0 for s in measured if s.state == TrialState.PRUNED.name
        ),
        projected_energy_j=projected,
        energy_sources=tuple(
            sorted({s.energy_source for s in summaries if s.energy_source is not None})
        ),
        unprojected_trials=unprojected,
        metric_name=_metric_name(study, schedule),
        pruner=settings,
        pruner_origin=origin,
        rungs=summarize_rungs(
            trials,
            held,
            settings,
            direction,
            schedule_steps
            if isinstance(schedule_steps, list) and all(is_int(s) for s in schedule_steps)
            else None,
            retries,
        ),
        saving_basis_j=basis,
        unmeasured_trials=tuple(s.number for s in summaries if s.energy_total_j is None),
        partly_measured_trials=tuple(s.number for s in measured if s.energy_invalid_windows),
        running_trials=running,
        best_trial=_best_trial(summaries, direction),
    )
    gaps = _Gaps(
        schedule_missing=schedule is None,
        has_rungs=any(held.values()),
        pruner_unreadable=unreadable,
        overrides=tuple(sorted(k for k, v in overrides.items() if v is not None)),
        overrides_ignored=ignored,
        malformed=tuple((n, r.malformed) for n, r in read.items() if r.malformed),
    )
    return replace(report, notes=_notes(report, gaps))
