"""Energy-aware successive halving: SM²'s pruner for Optuna."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_sm2 import _compat
from optuna_sm2 import attrs as _attrs
from optuna_sm2._validation import finite_or_none
from optuna_sm2.pruners._ranking import PERFORMANCE_TOLERANCE, Ranking, RungRanking
from optuna_sm2.pruners._records import RungRecord, read_records, rung_key
from optuna_sm2.pruners._settings import PrunerSettings, library_version
from optuna_sm2.pruners._weighted_objective import LRScale

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial


_WHAT = {"energy": "energy per epoch", "lr": "stable learning rate"}

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
    """What one process has learnt of one study; valid because records never change."""

    def __init__(self) -> None:
        self.current_rung: dict[int, int] = {}
        self.finished: dict[int, Mapping[int, RungRecord]] = {}
        self.warned_malformed: set[tuple[int, str]] = set()
        self.settings_checked = False


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
        """Record each rung the trial has newly reached and decide there, as Optuna does."""
        while (rung := self._unrecorded_rung(study, trial)) is not None:
            if not self._write_record(study, trial, rung):
                return True
            if not self.is_promoted(study, trial, rung):
                return True
        return False

    def record_rung(self, study: optuna.study.Study, trial: FrozenTrial) -> list[int]:
        """Write the trial's records for every rung it has newly reached, deciding nothing.

        Used to rank all configurations together (the paper's synchronous halving): record
        every trial first, then ask :meth:`is_promoted` for each. A non-finite value at a rung
        is never recorded, so such a trial is never promoted.

        Returns:
            The rungs recorded now, in order.
        """
        written: list[int] = []
        while (rung := self._unrecorded_rung(study, trial)) is not None:
            if not self._write_record(study, trial, rung):
                break
            written.append(rung)
        return written

    def is_promoted(self, study: optuna.study.Study, trial: FrozenTrial, rung: int) -> bool:
        """Whether :func:`~optuna_sm2.pruners.rank_rung` promotes the trial at ``rung``.

        The competitors are every trial of the study, in any state, that holds its own record
        for ``rung``. A trial without its own record there is not promoted.
        """
        _check_single_objective(study)
        records = self._rung_records(study, rung)
        if trial.number not in records:
            return False
        return self.rank(study, list(records.values())).is_promoted(trial.number)

    def rank(self, study: optuna.study.Study, records: list[RungRecord]) -> RungRanking:
        """:func:`~optuna_sm2.pruners.rank_rung` over ``records`` with this pruner's settings
        and the study's direction; warns once per pruner when a component is left out because some
        competitor lacks it (not when no competitor reports a stable LR: see ``_CHOSEN``)."""
        ranking = self._settings.rank(
            records,
            direction="maximize" if study.direction == StudyDirection.MAXIMIZE else "minimize",
        )
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

    def _unrecorded_rung(self, study: optuna.study.Study, trial: FrozenTrial) -> int | None:
        """The first rung the trial's latest step has reached without its record there.

        What this process wrote or read of the trial is remembered: nothing is read from
        storage while the trial stays below its next rung.
        """
        _check_single_objective(study)
        if trial.last_step is None:
            return None
        cache = self._cache(study)
        rung = cache.current_rung.get(_compat.trial_id(trial))
        if rung is None:
            rung = len(_consecutive(self._own_records(cache, trial)))
            cache.current_rung[_compat.trial_id(trial)] = rung
        promotion_step = self._promotion_step(study, rung)
        if promotion_step is None or trial.last_step < promotion_step:
            return None
        return rung

    def _write_record(self, study: optuna.study.Study, trial: FrozenTrial, rung: int) -> bool:
        """Store the trial's record at ``rung``; ``False`` (nothing stored) if its value there
        is not finite."""
        promotion_step = self._promotion_step(study, rung)
        assert promotion_step is not None
        value = value_at(trial, promotion_step)
        if value is None or finite_or_none(value) is None:
            return False
        attrs = trial.user_attrs
        record = RungRecord(
            trial=trial.number,
            value=value,
            energy_per_epoch_j=finite_or_none(attrs.get(_attrs.ENERGY_PER_EPOCH_J)),
            stable_lr=finite_or_none(attrs.get(_attrs.STABLE_LR)),
            energy_per_epoch_spread=finite_or_none(attrs.get(_attrs.ENERGY_PER_EPOCH_SPREAD)),
            energy_per_epoch_resolution=finite_or_none(
                attrs.get(_attrs.ENERGY_PER_EPOCH_RESOLUTION)
            ),
        )
        cache = self._cache(study)
        if not cache.settings_checked:
            cache.settings_checked = True
            self._store_settings(study)
        _compat.set_trial_system_attr(study, trial, rung_key(rung), record.to_json())
        cache.current_rung[_compat.trial_id(trial)] = rung + 1
        return True

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
        return self._caches.setdefault(_compat.storage_of(study), {}).setdefault(
            _compat.study_id(study), _StudyCache()
        )

    def _own_records(self, cache: _StudyCache, trial: FrozenTrial) -> Mapping[int, RungRecord]:
        """The trial's own records; a malformed one is left out with one warning."""
        read = read_records(trial.number, trial.system_attrs)
        for key in read.malformed:
            if (_compat.trial_id(trial), key) not in cache.warned_malformed:
                cache.warned_malformed.add((_compat.trial_id(trial), key))
                warnings.warn(
                    f"Trial {trial.number} holds a malformed rung record {key!r} "
                    f"({trial.system_attrs[key]!r}); it is left out of the ranking.",
                    stacklevel=2,
                )
        return read.records

    def _rung_records(self, study: optuna.study.Study, rung: int) -> dict[int, RungRecord]:
        """The records held at ``rung``, by trial number; finished trials are parsed once."""
        cache = self._cache(study)
        held: dict[int, RungRecord] = {}
        for t in study.get_trials(deepcopy=False):
            records = cache.finished.get(_compat.trial_id(t))
            if records is None:
                records = self._own_records(cache, t)
                if t.state.is_finished():
                    cache.finished[_compat.trial_id(t)] = records
            if rung in records:
                held[t.number] = records[rung]
        return held


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
