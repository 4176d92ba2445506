"""Energy-aware successive halving: SM²'s pruner for Optuna."""

from __future__ import annotations

import itertools
import math
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_sm2 import _compat
from optuna_sm2 import attrs as _attrs
from optuna_sm2.pruners._weighted_objective import (
    LRScale,
    check_lr_scale,
    check_unit_interval,
    component_weights,
    weighted_objective,
)

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial


def rung_key(rung: int) -> str:
    """The system-attr key of a trial's record for ``rung``."""
    return f"{_attrs.SYSTEM_ATTR_PREFIX}rung_{rung}"


@dataclass(frozen=True)
class RungRecord:
    """What a trial was ranked with when it first reached a rung; never changed afterwards."""

    trial: int
    value: float
    energy_per_epoch_j: float | None
    stable_lr: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "value": self.value,
            "energy_per_epoch_j": self.energy_per_epoch_j,
            "stable_lr": self.stable_lr,
        }

    @classmethod
    def from_json(cls, data: Any) -> RungRecord | None:
        """The record stored as ``data``, or ``None`` when ``data`` is not one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("trial"), int):
            return None
        return cls(
            trial=data["trial"],
            value=float(data["value"]),
            energy_per_epoch_j=_optional_float(data.get("energy_per_epoch_j")),
            stable_lr=_optional_float(data.get("stable_lr")),
        )


def _optional_float(x: Any) -> float | None:
    return None if x is None else float(x)


def own_records(number: int, system_attrs: Mapping[str, Any]) -> dict[int, RungRecord]:
    """The rung records a trial holds as its own.

    A trial that ``RetryHeartbeatStaleTrialCallback`` created inherits the system attrs of
    the trial it retries; those records carry the other trial's number and are skipped.
    """
    records: dict[int, RungRecord] = {}
    prefix = rung_key(0)[:-1]
    for key, data in system_attrs.items():
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            record = RungRecord.from_json(data)
            if record is not None and record.trial == number:
                records[int(key[len(prefix) :])] = record
    return records


def _estimate_min_resource(trials: Sequence[FrozenTrial]) -> int | None:
    """Optuna's heuristic: 1/100 of the longest completed trial, at least 1."""
    last_steps = [
        t.last_step for t in trials if t.state == TrialState.COMPLETE and t.last_step is not None
    ]
    return max(max(last_steps) // 100, 1) if last_steps else None


def _finite_or_none(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


class _StudyCache:
    """What one process has learnt of one study; valid because records never change."""

    def __init__(self) -> None:
        self.current_rung: dict[int, int] = {}
        self.finished: dict[int, dict[int, RungRecord]] = {}


class SuccessiveHalvingEnergyPruner(BasePruner):
    """Successive halving that ranks trials by performance, energy per epoch and stable LR.

    SM² ("Spend More to Save More", Geißler et al., arXiv 2412.08526) prunes at each rung the
    trials whose normalized weighted objective (Eq. 2)

    .. math::

        f = \\alpha P + (1 - \\alpha)(\\beta E + (1 - \\beta) LR)

    is not among the best :math:`1 / \\mathsf{reduction\\_factor}`. ``P`` is the trial's latest
    reported value, ``E`` its energy per epoch and ``LR`` its largest stable learning rate (the
    user attributes ``sm2.energy_per_epoch_j`` and ``sm2.stable_lr`` that
    :func:`optuna_sm2.report` stores), each min-max rescaled over the trials that reached the
    rung so that 1 is best (see :func:`optuna_sm2.weighted_objective`).

    With ``alpha=1`` the decisions are exactly those of
    :class:`optuna.pruners.SuccessiveHalvingPruner` with the same rung arguments. Unlike it, a
    NaN *or infinite* value at a rung prunes the trial, and records live under ``sm2:rung_<r>``
    system attrs holding the trial number, so that a trial recreated by
    :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` competes for its rungs again
    instead of inheriting the failed trial's.

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
        rung_steps: Explicit rung steps, strictly increasing and non-negative (the paper's
            fixed spacing), instead of the geometric schedule; no decision after the last.
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
        rung_steps: Sequence[int] | None = None,
    ) -> None:
        if not (min_resource == "auto" or (_is_int(min_resource) and int(min_resource) >= 1)):
            raise ValueError(
                f"`min_resource` must be 'auto' or an integer >= 1, got {min_resource!r}."
            )
        if not (_is_int(reduction_factor) and reduction_factor >= 2):
            raise ValueError(
                f"`reduction_factor` must be an integer >= 2, got {reduction_factor!r}."
            )
        if not (_is_int(min_early_stopping_rate) and min_early_stopping_rate >= 0):
            raise ValueError(
                "`min_early_stopping_rate` must be an integer >= 0, "
                f"got {min_early_stopping_rate!r}."
            )
        if not (_is_int(bootstrap_count) and bootstrap_count >= 0):
            raise ValueError(
                f"`bootstrap_count` must be an integer >= 0, got {bootstrap_count!r}."
            )
        if bootstrap_count > 0 and min_resource == "auto":
            raise ValueError(
                "`bootstrap_count` > 0 needs an integer `min_resource`, not 'auto' "
                "(as in Optuna's SuccessiveHalvingPruner)."
            )
        check_unit_interval("alpha", alpha)
        check_unit_interval("beta", beta)
        check_lr_scale(lr_scale)
        if rung_steps is not None:
            steps = list(rung_steps)
            if not steps or not all(_is_int(s) and s >= 0 for s in steps):
                raise ValueError(
                    f"`rung_steps` must be a non-empty list of integers >= 0, got {rung_steps!r}."
                )
            if any(a >= b for a, b in itertools.pairwise(steps)):
                raise ValueError(f"`rung_steps` must be strictly increasing, got {rung_steps!r}.")
            if min_resource != 1 or min_early_stopping_rate != 0:
                raise ValueError(
                    "`rung_steps` replaces the geometric schedule: leave `min_resource` and "
                    "`min_early_stopping_rate` at their defaults (1 and 0) when passing it."
                )
        self._min_resource: int | None = None if min_resource == "auto" else int(min_resource)
        self._reduction_factor = reduction_factor
        self._min_early_stopping_rate = min_early_stopping_rate
        self._bootstrap_count = bootstrap_count
        self._alpha = alpha
        self._beta = beta
        self._lr_scale: LRScale = lr_scale
        self._rung_steps = None if rung_steps is None else tuple(int(s) for s in rung_steps)
        self._warned_missing = False
        self._caches: weakref.WeakKeyDictionary[BaseStorage, dict[int, _StudyCache]] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def rung_steps(self) -> tuple[int, ...] | None:
        """The explicit rung steps, or ``None`` for the geometric schedule."""
        return self._rung_steps

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
        every trial first, then ask :meth:`is_promoted` for each. A non-finite latest value is
        never recorded, so such a trial is never promoted.

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
        """Whether the trial's record at ``rung`` ranks in the top ``1 / reduction_factor``.

        The competitors are every trial of the study, in any state, that holds its own record
        for ``rung``. A trial without its own record there is not promoted.
        """
        _check_single_objective(study)
        records = self._rung_records(study, rung)
        if trial.number not in records:
            return False
        numbers = list(records)
        if len(numbers) <= self._bootstrap_count:
            return False
        keys = self._ranking_keys(study, [records[n] for n in numbers])
        k = max(len(numbers) // self._reduction_factor, 1)
        threshold = sorted(keys, reverse=True)[k - 1]
        return keys[numbers.index(trial.number)] >= threshold

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
            rung = len(_consecutive(own_records(trial.number, trial.system_attrs)))
            cache.current_rung[_compat.trial_id(trial)] = rung
        promotion_step = self._promotion_step(study, rung)
        if promotion_step is None or trial.last_step < promotion_step:
            return None
        return rung

    def _write_record(self, study: optuna.study.Study, trial: FrozenTrial, rung: int) -> bool:
        """Store the trial's record at ``rung``; ``False`` (nothing stored) if not finite."""
        assert trial.last_step is not None
        value = trial.intermediate_values[trial.last_step]
        if not math.isfinite(value):
            return False
        record = RungRecord(
            trial=trial.number,
            value=float(value),
            energy_per_epoch_j=_finite_or_none(trial.user_attrs.get(_attrs.ENERGY_PER_EPOCH_J)),
            stable_lr=_finite_or_none(trial.user_attrs.get(_attrs.STABLE_LR)),
        )
        _compat.set_trial_system_attr(study, trial, rung_key(rung), record.to_json())
        self._cache(study).current_rung[_compat.trial_id(trial)] = rung + 1
        return True

    def _promotion_step(self, study: optuna.study.Study, rung: int) -> int | None:
        """The step at which ``rung`` is reached; ``None`` when there is no such rung (yet)."""
        if self._rung_steps is not None:
            return self._rung_steps[rung] if rung < len(self._rung_steps) else None
        if self._min_resource is None:
            self._min_resource = _estimate_min_resource(study.get_trials(deepcopy=False))
            if self._min_resource is None:
                return None
        return int(
            self._min_resource * self._reduction_factor ** (self._min_early_stopping_rate + rung)
        )

    def _cache(self, study: optuna.study.Study) -> _StudyCache:
        return self._caches.setdefault(_compat.storage_of(study), {}).setdefault(
            _compat.study_id(study), _StudyCache()
        )

    def _rung_records(self, study: optuna.study.Study, rung: int) -> dict[int, RungRecord]:
        """The records held at ``rung``, by trial number; finished trials are parsed once."""
        cache = self._cache(study)
        held: dict[int, RungRecord] = {}
        for t in study.get_trials(deepcopy=False):
            records = cache.finished.get(_compat.trial_id(t))
            if records is None:
                records = own_records(t.number, t.system_attrs)
                if t.state.is_finished():
                    cache.finished[_compat.trial_id(t)] = records
            if rung in records:
                held[t.number] = records[rung]
        return held

    def _ranking_keys(
        self, study: optuna.study.Study, records: Sequence[RungRecord]
    ) -> list[tuple[float, float]]:
        """Eq. 2 score, ties broken by performance; a non-finite value ranks last."""
        maximize = study.direction == StudyDirection.MAXIMIZE
        _, w_energy, w_lr = component_weights(self._alpha, self._beta)
        energies = self._complete("energy per epoch", w_energy, records, "energy_per_epoch_j")
        lrs = self._complete("stable learning rate", w_lr, records, "stable_lr")
        values = [r.value for r in records]
        scores = weighted_objective(
            values,
            energies,
            lrs,
            alpha=self._alpha,
            beta=self._beta,
            direction="maximize" if maximize else "minimize",
            lr_scale=self._lr_scale,
        )
        oriented = [(v if maximize else -v) if math.isfinite(v) else -math.inf for v in values]
        return [(float(s), o) for s, o in zip(scores, oriented, strict=True)]

    def _complete(
        self, what: str, weight: float, records: Sequence[RungRecord], field: str
    ) -> list[float] | None:
        """The attribute over all records, or ``None`` (with one warning) if any lacks it."""
        if weight == 0.0:
            return None
        column: list[float | None] = [getattr(r, field) for r in records]
        if all(x is not None for x in column):
            return [x for x in column if x is not None]
        if not self._warned_missing:
            self._warned_missing = True
            missing = [r.trial for r, x in zip(records, column, strict=True) if x is None]
            warnings.warn(
                f"The {what} is missing for trial(s) {missing}; it is left out of this rung's "
                "ranking and the remaining weights are renormalized. Report it with "
                "optuna_sm2.report(...) to rank by it. (Warned once per pruner.)",
                stacklevel=3,
            )
        return None


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


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
