"""Energy-aware successive halving: SM²'s pruner for Optuna."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_sm2 import _compat
from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2 import attrs as _attrs
from optuna_sm2._validation import finite_or_none, is_int
from optuna_sm2.pruners._columns import RungColumns
from optuna_sm2.pruners._ranking import (
    PERFORMANCE_TOLERANCE,
    Ranking,
    RungRanking,
    rank_checked,
)
from optuna_sm2.pruners._records import RungDecision, RungRecord, read_records, rung_key
from optuna_sm2.pruners._settings import PrunerSettings, library_version
from optuna_sm2.pruners._weighted_objective import Direction, LRScale

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial


_WHAT = {"energy": "energy per epoch", "lr": "stable learning rate"}

_RECORD_FIGURES = (
    trial_attrs.ENERGY_PER_EPOCH_J,
    trial_attrs.STABLE_LR,
    trial_attrs.ENERGY_PER_EPOCH_SPREAD,
    trial_attrs.ENERGY_PER_EPOCH_RESOLUTION,
)
"""The trial's figures a rung record holds, each under its field's name."""

_CHOSEN = frozenset({"lr"})
"""Components a study may lack by design, without a warning, when no competitor of a rung
reports them: a loop that searches the LR as a hyperparameter has no stable LR to report (the
ranking then uses performance and energy; ``optuna-sm2 report`` says so once). A lack of energy
is always warned: it is what SM² ranks by."""


def _estimate_min_resource(trials: list[FrozenTrial]) -> int | None:
    """Optuna's heuristic: 1/100 of the longest completed trial, at least 1."""
    last_steps = [
        t.last_step for t in trials if t.state == TrialState.COMPLETE and t.last_step is not None
    ]
    return max(max(last_steps) // 100, 1) if last_steps else None


def value_at(trial: FrozenTrial, step: int) -> float | None:
    """The trial's value at ``step``: at the first reported step at or after it, or ``None``.

    A retried trial inherits the failed trial's values; its rung still ranks the value at the
    rung's step, not a later inherited one.
    """
    reached = [s for s in trial.intermediate_values if s >= step]
    return None if not reached else float(trial.intermediate_values[min(reached)])


class _StudyCache:
    """What one process has learnt of one study; valid because records never change.

    The records of finished trials are kept per rung (:attr:`at_rung`, and as numpy
    :attr:`columns` for the ranking); :attr:`settled` trials
    (the first ones in number order) are finished and kept, so that a decision reads only the
    records of the trials after them.
    """

    def __init__(self, study: optuna.study.Study) -> None:
        _check_single_objective(study)
        self.direction: Direction = (
            "maximize" if study.direction == StudyDirection.MAXIMIZE else "minimize"
        )
        self.current_rung: dict[int, int] = {}
        self.finished: dict[int, Mapping[int, RungRecord]] = {}
        self.at_rung: dict[int, list[RungRecord]] = {}
        self.columns: dict[int, RungColumns] = {}
        self.settled = 0
        self.lineages: dict[int, list[FrozenTrial]] = {}
        self.warned_malformed: set[tuple[int, str]] = set()
        self.settings_checked = False

    def keep_finished(self, number: int, records: Mapping[int, RungRecord]) -> None:
        """Remember a finished trial's own records (they never change)."""
        self.finished[number] = records
        for rung, record in records.items():
            self.at_rung.setdefault(rung, []).append(record)

    def columns_at(self, rung: int, count: int) -> RungColumns:
        """The columns of the first ``count`` records kept at ``rung`` (made once, then
        extended by the records kept since)."""
        kept = self.columns.setdefault(rung, RungColumns.of([]))
        if len(kept) < count:
            added = RungColumns.of(self.at_rung[rung][len(kept) : count])
            kept = self.columns[rung] = RungColumns.joined([kept, added])
        return kept


class SuccessiveHalvingEnergyPruner(BasePruner):
    """Successive halving that ranks trials by performance, energy per epoch and stable LR.

    SM² ("Spend More to Save More", Geißler et al., arXiv 2412.08526) prunes at each rung the
    trials whose normalized weighted objective (Eq. 2)

    .. math::

        f = \\alpha P + (1 - \\alpha)(\\beta E + (1 - \\beta) LR)

    is not among the best :math:`1 / \\mathsf{reduction\\_factor}`. ``P`` is the trial's value
    at the rung's step, ``E`` its energy per epoch and ``LR`` its largest stable learning rate (the
    user attributes ``sm2.energy_per_epoch_j`` and ``sm2.stable_lr`` that
    :func:`optuna_sm2.report` stores), each min-max rescaled over the trials that reached the
    rung so that 1 is best. By default (``ranking="robust"``) the ranking withstands diverged
    values and measurement noise, and protects clearly better performers from the cost terms.
    :func:`optuna_sm2.pruners.rank_rung` is the whole rule; the report and the dashboard explain
    decisions with it.

    With ``alpha=1`` and Optuna's rung arguments passed explicitly
    (``SuccessiveHalvingEnergyPruner("auto", 4, alpha=1.0)``; the defaults here are the paper's
    halving, ``min_resource=1, reduction_factor=2``) the decisions are exactly those of
    :class:`optuna.pruners.SuccessiveHalvingPruner` when ``should_prune()`` is asked after
    every report, as Optuna's documentation does. Unlike it, a NaN *or infinite* value at a
    rung prunes the trial; a rung ranks the value at the rung's step (the first reported step
    at or after it), not a later one; and records live under ``sm2:rung_<r>`` system attrs
    holding the trial number, so that a trial recreated by
    :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` competes for its rungs again
    instead of inheriting the failed trial's.

    The first time the pruner writes to a study it stores its :attr:`settings` as the study
    user attr ``sm2.pruner``; a pruner with other settings on the same study warns once and
    leaves the stored ones alone.

    Example:
        .. code-block:: python

            import optuna
            from optuna_sm2 import SuccessiveHalvingEnergyPruner, report

            def objective(trial):
                batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
                accuracy = 0.0
                for epoch in range(8):
                    accuracy = 1.0 - 1.0 / (epoch + 2) - batch_size / 4096
                    report(
                        trial, accuracy, epoch,
                        energy_per_epoch_j=3000.0 / batch_size ** 0.5, stable_lr=batch_size / 1000,
                    )
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return accuracy

            study = optuna.create_study(
                direction="maximize", pruner=SuccessiveHalvingEnergyPruner()
            )
            study.optimize(objective, n_trials=16)

    Args:
        min_resource: Steps before the first rung, or ``"auto"`` (Optuna's heuristic: 1/100
            of the longest completed trial). Rung ``r`` is reached at step
            ``min_resource * reduction_factor ** (min_early_stopping_rate + r)``.
        reduction_factor: About ``1 / reduction_factor`` of the trials at a rung are promoted;
            2 is the paper's halving.
        min_early_stopping_rate: Optuna's :math:`s`, shifting the geometric rungs.
        bootstrap_count: Trials that must hold a rung record before any is promoted from it.
        alpha: Weight of performance against the cost terms, in [0, 1] (paper: 0.75).
        beta: Weight of energy against learning rate within the cost terms (paper: 0.5).
        lr_scale: ``"log"`` or ``"linear"``, how learning rates are compared.
        rung_steps: Explicit rung steps (any iterable of integers, read once), strictly
            increasing and non-negative (the paper's fixed spacing), instead of the geometric
            schedule; no decision after the last.
        ranking: ``"robust"`` (default): a diverged though finite value ranks last and stays
            out of the others' rescaling, energies within their spread and LRs within a factor
            1.5 score alike, and the cost terms never promote a trial over one whose value is
            better by more than ``performance_tolerance``. ``"paper"``: the plain Eq. 2.
            Both decide as Optuna's pruner with ``alpha=1`` (``docs/pruner.md``).
        performance_tolerance: With ``ranking="robust"``, how much better (relative to the
            better value's magnitude) a value must be to be safe from the cost terms, in
            [0, 1) (default 0.02: 2 %).
    """

    def __init__(
        self,
        min_resource: str | int = 1,
        reduction_factor: int = 2,
        min_early_stopping_rate: int = 0,
        bootstrap_count: int = 0,
        *,
        alpha: float = 0.75,
        beta: float = 0.5,
        lr_scale: LRScale = "log",
        rung_steps: Iterable[int] | None = None,
        ranking: Ranking = "robust",
        performance_tolerance: float = PERFORMANCE_TOLERANCE,
    ) -> None:
        settings = PrunerSettings(
            alpha=alpha,
            beta=beta,
            lr_scale=lr_scale,
            reduction_factor=reduction_factor,
            min_resource=min_resource,  # type: ignore[arg-type]  # checked by .checked()
            min_early_stopping_rate=min_early_stopping_rate,
            bootstrap_count=bootstrap_count,
            rung_steps=None if rung_steps is None else _once(rung_steps),
            ranking=ranking,
            performance_tolerance=performance_tolerance,
            version=library_version(),
        ).checked()
        if settings.bootstrap_count > 0 and settings.min_resource == "auto":
            raise ValueError(
                "`bootstrap_count` > 0 needs an integer `min_resource`, not 'auto' "
                "(as in Optuna's SuccessiveHalvingPruner)."
            )
        if settings.rung_steps is not None and (
            settings.min_resource != 1 or settings.min_early_stopping_rate != 0
        ):
            raise ValueError(
                "`rung_steps` replaces the geometric schedule: leave `min_resource` and "
                "`min_early_stopping_rate` at their defaults (1 and 0) when passing it."
            )
        self._settings = settings
        self._ranking_arguments = settings.ranking_arguments()  # checked once, here
        self._min_resource: int | None = (
            None if settings.min_resource == "auto" else settings.min_resource
        )
        self._warned_missing = False
        self._caches: weakref.WeakKeyDictionary[BaseStorage, dict[int, _StudyCache]] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def settings(self) -> PrunerSettings:
        """The pruner's arguments, as it stores them in a study (``sm2.pruner``)."""
        return self._settings

    @property
    def rung_steps(self) -> tuple[int, ...] | None:
        """The explicit rung steps, or ``None`` for the geometric schedule."""
        return self._settings.rung_steps

    def __getstate__(self) -> dict[str, Any]:
        """The pruner pickles (a study goes into each DDP spawn worker); its caches stay."""
        return {**self.__dict__, "_caches": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._caches = weakref.WeakKeyDictionary()

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        """Record each rung the trial has newly reached and decide there, as Optuna does; the
        decision is stored in the record (:class:`~optuna_sm2.pruners.RungDecision`)."""
        cache = self._cache(study)
        while (rung := self._unrecorded_rung(study, cache, trial)) is not None:
            record = self._new_record(study, cache, trial, rung)
            if record is None:
                return True
            others, columns = self._rung_records(study, cache, rung, without=trial.number)
            ranking = self._rank(cache, [*others, record], columns, [record])
            decision = RungDecision.at(ranking, len(others))
            self._write_record(study, cache, trial, rung, replace(record, decision=decision))
            if not decision.promoted:
                return True
        return False

    def record_rung(self, study: optuna.study.Study, trial: FrozenTrial) -> list[int]:
        """Write the trial's records for every rung it has newly reached, deciding nothing.

        Used to rank all configurations together (the paper's synchronous halving): record
        every trial first, then ask :meth:`is_promoted` for each. A non-finite value at a rung
        is never recorded, so such a trial is never promoted. The records hold no decision.

        Returns:
            The rungs recorded now, in order.
        """
        cache = self._cache(study)
        written: list[int] = []
        while (rung := self._unrecorded_rung(study, cache, trial)) is not None:
            record = self._new_record(study, cache, trial, rung)
            if record is None:
                break
            self._write_record(study, cache, trial, rung, record)
            written.append(rung)
        return written

    def is_promoted(self, study: optuna.study.Study, trial: FrozenTrial, rung: int) -> bool:
        """Whether :func:`~optuna_sm2.pruners.rank_rung` promotes the trial at ``rung`` now.

        The competitors are every trial of the study, in any state, that holds its own record
        for ``rung``. A trial without its own record there is not promoted. Nothing is stored:
        the synchronous schedule ranks every configuration's record with this.
        """
        cache = self._cache(study)
        records, columns = self._rung_records(study, cache, rung)
        if not any(r.trial == trial.number for r in records):
            return False
        return self._rank(cache, records, columns).is_promoted(trial.number)

    def rank(self, study: optuna.study.Study, records: list[RungRecord]) -> RungRanking:
        """:func:`~optuna_sm2.pruners.rank_rung` over ``records`` (checked) with this pruner's
        settings and the study's direction; warns once per pruner when a component is left out
        because some competitor lacks it (not when no competitor reports a stable LR: see
        ``_CHOSEN``)."""
        cache = self._cache(study)
        return self._warn_left_out(self._settings.rank(records, direction=cache.direction))

    def _rank(
        self,
        cache: _StudyCache,
        records: list[RungRecord],
        columns: RungColumns,
        added: list[RungRecord] | None = None,
    ) -> RungRanking:
        """:meth:`rank` over records this pruner read or made (the kernel: nothing checked);
        ``columns`` are those of ``records`` less the ``added`` ones, last in ``records``."""
        if added:
            columns = RungColumns.joined([columns, RungColumns.of(added)])
        ranking = rank_checked(
            records, direction=cache.direction, columns=columns, **self._ranking_arguments
        )
        return self._warn_left_out(ranking)

    def _warn_left_out(self, ranking: RungRanking) -> RungRanking:
        unexpected = {
            component: missing
            for component, missing in ranking.left_out.items()
            if component not in _CHOSEN or component not in ranking.unreported
        }
        if unexpected and not self._warned_missing:
            self._warned_missing = True
            component, missing = next(iter(unexpected.items()))
            warnings.warn(
                f"The {_WHAT[component]} is missing for trial(s) {list(missing)}; it is left "
                "out of this rung's ranking and the remaining weights are renormalized. Report "
                "it with optuna_sm2.report(...) to rank by it. (Warned once per pruner.)",
                stacklevel=5,
            )
        return ranking

    def _unrecorded_rung(
        self, study: optuna.study.Study, cache: _StudyCache, trial: FrozenTrial
    ) -> int | None:
        """The first rung the trial's latest step has reached without its configuration's
        record there.

        A retry's configuration is the trial with the trials it retries (Optuna's
        ``retry_history``): a rung one of them recorded is the retry's too, decided there and
        never recorded again. What this process wrote or read of the trial is remembered:
        nothing is read from storage while the trial stays below its next rung.
        """
        if trial.last_step is None:
            return None
        rung = cache.current_rung.get(trial.number)
        if rung is None:
            held = dict(self._own_records(cache, trial))
            for earlier in reversed(self._lineage(study, cache, trial)):
                held.update(self._own_records(cache, earlier))
            rung = len(_consecutive(held))
            cache.current_rung[trial.number] = rung
        promotion_step = self._promotion_step(study, rung)
        if promotion_step is None or trial.last_step < promotion_step:
            return None
        return rung

    def _lineage(
        self, study: optuna.study.Study, cache: _StudyCache, trial: FrozenTrial
    ) -> list[FrozenTrial]:
        """The trials ``trial`` retries (its ``retry_history``), oldest first; read once."""
        lineage = cache.lineages.get(trial.number)
        if lineage is None:
            try:
                history = _compat.retry_history(trial)
            except TypeError:  # a malformed retry_history: the trial is its own configuration
                history = []
            numbers = {n for n in history if is_int(n) and 0 <= n < trial.number}
            lineage = (
                [t for t in study.get_trials(deepcopy=False) if t.number in numbers]
                if numbers
                else []
            )
            cache.lineages[trial.number] = lineage
        return lineage

    def _new_record(
        self, study: optuna.study.Study, cache: _StudyCache, trial: FrozenTrial, rung: int
    ) -> RungRecord | None:
        """The trial's record at ``rung``, undecided; ``None`` if its value there is not
        finite.

        The figures (energy, spread, LR) are those of the first trial of its configuration
        that reached the rung's step: the trial's own, unless a trial it retries reported that
        step (and died before recording the rung), whose last stored figures they are then.
        """
        promotion_step = self._promotion_step(study, rung)
        assert promotion_step is not None
        value = value_at(trial, promotion_step)
        if value is None or finite_or_none(value) is None:
            return None
        source = next(
            (
                t
                for t in cache.lineages.get(trial.number, ())
                if t.last_step is not None and t.last_step >= promotion_step
            ),
            trial,
        )
        held = source.user_attrs
        figures = {attr.name: attr.read(held) for attr in _RECORD_FIGURES}
        # A figure out of its range reads as unknown.
        return RungRecord.from_json({"trial": trial.number, "value": value, **figures})

    def _write_record(
        self,
        study: optuna.study.Study,
        cache: _StudyCache,
        trial: FrozenTrial,
        rung: int,
        record: RungRecord,
    ) -> None:
        """Store the trial's record at ``rung`` (once; records never change)."""
        if not cache.settings_checked:
            cache.settings_checked = True
            self._store_settings(study)
        _compat.set_trial_system_attr(study, trial, rung_key(rung), record.to_json())
        cache.current_rung[trial.number] = rung + 1

    def _store_settings(self, study: optuna.study.Study) -> None:
        """Store :attr:`settings` as ``sm2.pruner`` unless the study holds some; warn once if
        those differ from ours."""
        stored = study.user_attrs.get(_attrs.PRUNER)
        if stored is None:
            study.set_user_attr(_attrs.PRUNER, self._settings.to_json())
            return
        try:
            differences = PrunerSettings.from_json(stored).differences(self._settings)
        except ValueError as exc:
            differences = (f"unreadable ({exc})",)
        if differences:
            warnings.warn(
                f"Study {study.study_name!r} stores pruner settings ({_attrs.PRUNER}) that "
                f"differ from this pruner's: {'; '.join(differences)} (stored against this "
                "pruner's). This pruner decides with its own; the stored settings are left as "
                "they are, and the report and the dashboard explain the study with them.",
                stacklevel=5,
            )

    def _promotion_step(self, study: optuna.study.Study, rung: int) -> int | None:
        """The step at which ``rung`` is reached; ``None`` when there is no such rung (yet)."""
        s = self._settings
        if s.rung_steps is not None:
            return s.rung_steps[rung] if rung < len(s.rung_steps) else None
        if self._min_resource is None:
            self._min_resource = _estimate_min_resource(study.get_trials(deepcopy=False))
            if self._min_resource is None:
                return None
        return int(self._min_resource * s.reduction_factor ** (s.min_early_stopping_rate + rung))

    def _cache(self, study: optuna.study.Study) -> _StudyCache:
        """What this process knows of ``study``; made (the study checked single-objective)
        at the first call on it."""
        studies = self._caches.setdefault(_compat.storage_of(study), {})
        cache = studies.get(_compat.study_id(study))
        if cache is None:
            cache = studies[_compat.study_id(study)] = _StudyCache(study)
        return cache

    def _own_records(self, cache: _StudyCache, trial: FrozenTrial) -> Mapping[int, RungRecord]:
        """The trial's own records; a malformed one is left out with one warning."""
        known = cache.finished.get(trial.number)
        if known is not None:
            return known
        read = read_records(trial.number, trial.system_attrs)
        for key in read.malformed:
            if (trial.number, key) not in cache.warned_malformed:
                cache.warned_malformed.add((trial.number, key))
                warnings.warn(
                    f"Trial {trial.number} holds a malformed rung record {key!r} "
                    f"({trial.system_attrs[key]!r}); it is left out of the ranking.",
                    stacklevel=2,
                )
        return read.records

    def _rung_records(
        self,
        study: optuna.study.Study,
        cache: _StudyCache,
        rung: int,
        without: int | None = None,
    ) -> tuple[list[RungRecord], RungColumns]:
        """The records held at ``rung`` (but trial number ``without``'s), in no set order,
        and their columns.

        Finished trials never change: their records are parsed once and kept per rung, with
        their columns, and only the trials after the :attr:`_StudyCache.settled` ones are
        looked at.
        """
        trials = study.get_trials(deepcopy=False)
        held = list(cache.at_rung.get(rung, ()))
        kept = len(held)
        for t in trials[cache.settled :]:
            if t.number in cache.finished or t.number == without:
                continue  # a finished one is in `held` already
            records = self._own_records(cache, t)
            if t.state.is_finished():
                cache.keep_finished(t.number, records)
            if rung in records:
                held.append(records[rung])
        while cache.settled < len(trials) and trials[cache.settled].number in cache.finished:
            cache.settled += 1
        columns = cache.columns_at(rung, kept)
        return held, RungColumns.joined([columns, RungColumns.of(held[kept:])])


def _once(steps: Any) -> Any:
    """``steps`` read once into a tuple (an iterator gives its items once); anything that is
    not an iterable is passed on for the settings check to name."""
    if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Iterable):
        return steps
    return tuple(steps)


def _consecutive(records: Mapping[int, RungRecord]) -> list[int]:
    """Rungs 0, 1, ... held without a gap."""
    rungs: list[int] = []
    while len(rungs) in records:
        rungs.append(len(rungs))
    return rungs


def _check_single_objective(study: optuna.study.Study) -> None:
    if len(study.directions) > 1:
        raise ValueError(
            "SuccessiveHalvingEnergyPruner supports single-objective studies only "
            f"(this study has {len(study.directions)} directions): Optuna cannot report "
            "intermediate values in multi-objective studies."
        )
