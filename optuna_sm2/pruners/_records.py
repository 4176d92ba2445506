"""Rung records: what a trial was ranked with at a rung and what the pruner decided there,
stored once as a system attr."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna_sm2 import attrs as _attrs
from optuna_sm2._validation import finite_or_none, is_int, is_real

if TYPE_CHECKING:
    from optuna_sm2.pruners._ranking import RungRanking

_TERMS = ("performance", "energy", "lr")
"""The terms of Eq. 2 a decision stores (:data:`optuna_sm2.pruners.COMPONENTS`)."""


def rung_key(rung: int) -> str:
    """The system-attr key of a trial's record for ``rung``."""
    return f"{_attrs.SYSTEM_ATTR_PREFIX}rung_{rung}"


_PREFIX = rung_key(0)[:-1]


@dataclass(frozen=True)
class RungDecision:
    """What the pruner decided for a trial at a rung, at the moment it decided.

    Attributes:
        promoted: Whether the trial went on (``False``: ``should_prune()`` said prune).
        rank: Its rank among the competitors then (1 best; ties share a rank).
        competitors: How many trials held a record for the rung then, itself included.
        promote_count: ``k = max(competitors // reduction_factor, 1)``: the trials ranked at
            least as well as the k-th were promoted (none while ``competitors`` was at most
            ``bootstrap_count``).
        score: Its Eq. 2 score then, in [0, 1] (1 best).
        terms: The weighted term of each component of Eq. 2 (``performance``, ``energy``,
            ``lr``), summing to ``score`` up to rounding.
        diverged: Whether the robust rule found its value diverged then.

    Example:
        >>> decision = RungDecision(True, 1, 3, 1, 0.9, {"performance": 0.9}, False)
        >>> RungDecision.from_json(decision.to_json()).terms
        {'performance': 0.9, 'energy': 0.0, 'lr': 0.0}
        >>> RungDecision.from_json({"promoted": "yes"}) is None
        True
    """

    promoted: bool
    rank: int
    competitors: int
    promote_count: int
    score: float
    terms: Mapping[str, float]
    diverged: bool = False

    @classmethod
    def at(cls, ranking: RungRanking, index: int) -> RungDecision:
        """The decision ``ranking`` takes for its competitor at ``index`` (in the order of
        ``ranking.records``)."""
        return cls(
            promoted=bool(ranking.promoted_mask[index]),
            rank=int(ranking.ranks[index]),
            competitors=len(ranking.records),
            promote_count=ranking.promote_count,
            score=float(ranking.scores[index]),
            terms={name: float(ranking.terms[name][index]) for name in _TERMS},
            diverged=bool(ranking.diverged_mask[index]),
        )

    def to_json(self) -> dict[str, Any]:
        """The decision as stored in its record (``"decision"``)."""
        return {
            "promoted": self.promoted,
            "rank": self.rank,
            "competitors": self.competitors,
            "promote_count": self.promote_count,
            "score": self.score,
            "terms": {name: self.terms.get(name, 0.0) for name in _TERMS},
            "diverged": self.diverged,
        }

    @classmethod
    def from_json(cls, data: Any) -> RungDecision | None:
        """The decision stored as ``data``, or ``None`` when ``data`` is not one (a record
        written without deciding, or before decisions were stored)."""
        if not isinstance(data, Mapping):
            return None
        promoted, diverged = data.get("promoted"), data.get("diverged", False)
        counts: list[Any] = [data.get(k) for k in ("rank", "competitors", "promote_count")]
        score, terms = finite_or_none(data.get("score")), data.get("terms")
        if (
            not isinstance(promoted, bool)
            or not isinstance(diverged, bool)
            or not all(is_int(c) and c >= 1 for c in counts)
            or score is None
            or not isinstance(terms, Mapping)
        ):
            return None
        figures = {name: finite_or_none(terms.get(name, 0.0)) for name in _TERMS}
        if any(x is None for x in figures.values()):
            return None
        return cls(
            promoted=promoted,
            rank=int(counts[0]),
            competitors=int(counts[1]),
            promote_count=int(counts[2]),
            score=score,
            terms={name: x for name, x in figures.items() if x is not None},
            diverged=diverged,
        )


@dataclass(frozen=True)
class RungRecord:
    """What a trial was ranked with when it first reached a rung, and what the pruner decided
    there; never changed afterwards.

    ``value`` is the trial's intermediate value at the rung's step (NaN or infinite only in a
    record some other writer stored); ``energy_per_epoch_j`` (J, >= 0), its relative spread
    ``energy_per_epoch_spread`` (>= 0), its relative resolution
    ``energy_per_epoch_resolution`` (>= 0, how far the meter's steps may have moved it) and
    ``stable_lr`` (> 0) are ``None`` when unknown. ``decision`` is ``None`` for a record
    written without deciding (:meth:`~optuna_sm2.SuccessiveHalvingEnergyPruner.record_rung`,
    the synchronous schedule) or by a version before decisions were stored.
    """

    trial: int
    value: float
    energy_per_epoch_j: float | None = None
    stable_lr: float | None = None
    energy_per_epoch_spread: float | None = None
    energy_per_epoch_resolution: float | None = None
    decision: RungDecision | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as stored; ``energy_per_epoch_spread``, ``energy_per_epoch_resolution``
        and ``decision`` only when known."""
        data: dict[str, Any] = {
            "trial": self.trial,
            "value": self.value,
            "energy_per_epoch_j": self.energy_per_epoch_j,
            "stable_lr": self.stable_lr,
        }
        if self.energy_per_epoch_spread is not None:
            data["energy_per_epoch_spread"] = self.energy_per_epoch_spread
        if self.energy_per_epoch_resolution is not None:
            data["energy_per_epoch_resolution"] = self.energy_per_epoch_resolution
        if self.decision is not None:
            data["decision"] = self.decision.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> RungRecord | None:
        """The record stored as ``data``, or ``None`` when ``data`` is not one.

        A record needs an integer ``trial`` and a number ``value``; an optional figure that is
        missing or out of its range (a negative energy, a learning rate <= 0) reads as unknown,
        and so does a ``decision`` that is missing or not one (:meth:`RungDecision.from_json`).

        Example:
            >>> record = RungRecord.from_json({"trial": 3, "value": 1, "energy_per_epoch_j": -1})
            >>> record.value, record.energy_per_epoch_j
            (1.0, None)
            >>> RungRecord.from_json({"trial": 3}) is None
            True
        """
        if not isinstance(data, Mapping):
            return None
        trial, value = data.get("trial"), data.get("value")
        if not is_int(trial) or not is_real(value):
            return None
        return cls(
            trial=int(trial),  # type: ignore[arg-type]  # an integer, checked above
            value=float(value),  # type: ignore[arg-type]  # a number, checked above
            energy_per_epoch_j=_at_least(data.get("energy_per_epoch_j"), 0.0, inclusive=True),
            stable_lr=_at_least(data.get("stable_lr"), 0.0, inclusive=False),
            energy_per_epoch_spread=_at_least(
                data.get("energy_per_epoch_spread"), 0.0, inclusive=True
            ),
            energy_per_epoch_resolution=_at_least(
                data.get("energy_per_epoch_resolution"), 0.0, inclusive=True
            ),
            decision=RungDecision.from_json(data.get("decision")),
        )


def _at_least(x: Any, low: float, *, inclusive: bool) -> float | None:
    value = finite_or_none(x)
    if value is None or value < low or (value == low and not inclusive):
        return None
    return value


@dataclass(frozen=True)
class TrialRecords:
    """The rung records a trial holds as its own, and the keys of those it holds malformed."""

    records: Mapping[int, RungRecord]
    malformed: tuple[str, ...] = ()


def read_records(number: int, system_attrs: Mapping[str, Any]) -> TrialRecords:
    """The rung records trial ``number`` holds as its own, read defensively.

    A trial that ``RetryHeartbeatStaleTrialCallback`` created inherits the system attrs of the
    trial it retries; those records carry the other trial's number and are skipped. A record
    that is not one (no integer ``trial``, no number ``value``) cannot be ranked: it is left
    out, and its key is listed in :attr:`TrialRecords.malformed` when it names this trial or
    names no trial at all.
    """
    records: dict[int, RungRecord] = {}
    malformed: list[str] = []
    for key, data in system_attrs.items():
        if not (key.startswith(_PREFIX) and key[len(_PREFIX) :].isdigit()):
            continue
        record = RungRecord.from_json(data)
        if record is None:
            owner = data.get("trial") if isinstance(data, Mapping) else None
            if not is_int(owner) or owner == number:
                malformed.append(key)
        elif record.trial == number:
            records[int(key[len(_PREFIX) :])] = record
    return TrialRecords(records, tuple(sorted(malformed)))


def own_records(number: int, system_attrs: Mapping[str, Any]) -> dict[int, RungRecord]:
    """The rung records trial ``number`` holds as its own (see :func:`read_records`)."""
    return dict(read_records(number, system_attrs).records)
