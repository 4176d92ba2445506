"""Rung records: what a trial was ranked with at a rung, stored once as a system attr."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna_sm2 import attrs as _attrs
from optuna_sm2._validation import finite_or_none, is_int, is_real


def rung_key(rung: int) -> str:
    """The system-attr key of a trial's record for ``rung``."""
    return f"{_attrs.SYSTEM_ATTR_PREFIX}rung_{rung}"


_PREFIX = rung_key(0)[:-1]


@dataclass(frozen=True)
class RungRecord:
    """What a trial was ranked with when it first reached a rung; never changed afterwards.

    ``value`` is the trial's intermediate value at the rung's step (NaN or infinite only in a
    record some other writer stored); ``energy_per_epoch_j`` (J, >= 0), its relative spread
    ``energy_per_epoch_spread`` (>= 0), its relative resolution
    ``energy_per_epoch_resolution`` (>= 0, how far the meter's steps may have moved it) and
    ``stable_lr`` (> 0) are ``None`` when unknown.
    """

    trial: int
    value: float
    energy_per_epoch_j: float | None = None
    stable_lr: float | None = None
    energy_per_epoch_spread: float | None = None
    energy_per_epoch_resolution: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as stored; ``energy_per_epoch_spread`` and
        ``energy_per_epoch_resolution`` only when known."""
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
        return data

    @classmethod
    def from_json(cls, data: Any) -> RungRecord | None:
        """The record stored as ``data``, or ``None`` when ``data`` is not one.

        A record needs an integer ``trial`` and a number ``value``; an optional figure that is
        missing or out of its range (a negative energy, a learning rate <= 0) reads as unknown.

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
