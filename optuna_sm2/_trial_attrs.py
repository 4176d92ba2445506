"""What SM² stores on a trial: each user attribute as one typed field, read and written here.

Every user attribute of :mod:`optuna_sm2.attrs` that a trial holds is one :class:`TrialAttr`
below: its key, its type as ``docs/stored-data.md`` names it (the docs are tested against
these), how its stored JSON is read and how a value becomes JSON. :class:`TrialAttrs` is the
record of them all, read from a trial's user attributes; :class:`TrialWriter` is the one way
SM² writes them, and writes a value only when the trial does not hold it already.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from optuna_sm2 import _compat
from optuna_sm2 import attrs as _attrs
from optuna_sm2._validation import count, finite_or_none

if TYPE_CHECKING:
    import optuna

_T = TypeVar("_T")


@dataclass(frozen=True)
class TrialAttr(Generic[_T]):
    """One user attribute of a trial.

    Attributes:
        name: Its field of :class:`TrialAttrs`.
        key: The stored key (:mod:`optuna_sm2.attrs`).
        type: Its JSON type as ``docs/stored-data.md``'s table writes it.
        parse: Stored JSON to the value; ``None`` when absent, null or not of the type.
        dump: The value to its stored JSON.
    """

    name: str
    key: str
    type: str
    parse: Callable[[Any], _T | None]
    dump: Callable[[_T], Any]

    def read(self, user_attrs: Mapping[str, Any]) -> _T | None:
        """The value ``user_attrs`` hold; ``None`` when absent, null or not of the type.

        Example:
            >>> STABLE_LR.read({"sm2.stable_lr": 0.1}), STABLE_LR.read({})
            (0.1, None)
        """
        return self.parse(user_attrs.get(self.key))

    def to_json(self, value: _T | None) -> Any:
        """``value`` as it is stored: its JSON form, or null for ``None``."""
        return None if value is None else self.dump(value)


def _text(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def _pair(x: Any) -> tuple[float, float] | None:
    """``[low, high]`` as two finite floats; ``None`` when it is not that."""
    if isinstance(x, Sequence) and not isinstance(x, str) and len(x) == 2:
        low, high = finite_or_none(x[0]), finite_or_none(x[1])
        if low is not None and high is not None:
            return low, high
    return None


def _pair_json(x: tuple[float, float]) -> list[float]:
    return [float(x[0]), float(x[1])]


def _real(name: str, key: str, type: str = "float") -> TrialAttr[float]:
    return TrialAttr(name, key, type, finite_or_none, float)


def _int(name: str, key: str) -> TrialAttr[int]:
    return TrialAttr(name, key, "int", count, int)


ENERGY_PER_EPOCH_J = _real("energy_per_epoch_j", _attrs.ENERGY_PER_EPOCH_J)
STABLE_LR = _real("stable_lr", _attrs.STABLE_LR)
ENERGY_PER_EPOCH_SPREAD = _real(
    "energy_per_epoch_spread", _attrs.ENERGY_PER_EPOCH_SPREAD, "float or null"
)
ENERGY_PER_EPOCH_RESOLUTION = _real(
    "energy_per_epoch_resolution", _attrs.ENERGY_PER_EPOCH_RESOLUTION, "float or null"
)
ENERGY_TOTAL_J = _real("energy_total_j", _attrs.ENERGY_TOTAL_J, "float or null")
ENERGY_EXPLORE_J = _real("energy_explore_j", _attrs.ENERGY_EXPLORE_J, "float or null")
ENERGY_SOURCE = TrialAttr("energy_source", _attrs.ENERGY_SOURCE, "str or null", _text, str)
ENERGY_TRAIN_J = _real("energy_train_j", _attrs.ENERGY_TRAIN_J, "float or null")
ENERGY_EVAL_J = _real("energy_eval_j", _attrs.ENERGY_EVAL_J, "float or null")
ENERGY_INVALID_WINDOWS = _int("energy_invalid_windows", _attrs.ENERGY_INVALID_WINDOWS)
EPOCHS_TRAINED = _int("epochs_trained", _attrs.EPOCHS_TRAINED)
EXPLORATIONS = _int("explorations", _attrs.EXPLORATIONS)
LR_WINDOW = TrialAttr("lr_window", _attrs.LR_WINDOW, "[float, float]", _pair, _pair_json)
LR_DIVERGED_AT = _real("lr_diverged_at", _attrs.LR_DIVERGED_AT, "float or null")
RESUMED_FROM = _int("resumed_from", _attrs.RESUMED_FROM)

ENERGY_PARTS_J: dict[str, TrialAttr[float]] = {
    "explore": ENERGY_EXPLORE_J,
    "train": ENERGY_TRAIN_J,
    "eval": ENERGY_EVAL_J,
}
"""The parts of :data:`ENERGY_TOTAL_J`, by the energy book's part."""

TRIAL_ATTRS: tuple[TrialAttr[Any], ...] = (
    ENERGY_PER_EPOCH_J,
    STABLE_LR,
    ENERGY_PER_EPOCH_SPREAD,
    ENERGY_PER_EPOCH_RESOLUTION,
    ENERGY_TOTAL_J,
    ENERGY_EXPLORE_J,
    ENERGY_SOURCE,
    ENERGY_TRAIN_J,
    ENERGY_EVAL_J,
    ENERGY_INVALID_WINDOWS,
    EPOCHS_TRAINED,
    EXPLORATIONS,
    LR_WINDOW,
    LR_DIVERGED_AT,
    RESUMED_FROM,
)
"""Every user attribute SM² stores on a trial, in the order of :class:`TrialAttrs`."""


@dataclass(frozen=True)
class TrialAttrs:
    """The user attributes SM² stored on a trial, typed; one that is absent, null or not of
    its type is ``None``. Each field is the :class:`TrialAttr` of the same name (the meaning of
    each key is in :mod:`optuna_sm2.attrs`).

    Example:
        >>> held = TrialAttrs.read({"sm2.epochs_trained": 3, "sm2.lr_window": [0.01, 0.1]})
        >>> held.epochs_trained, held.lr_window, held.energy_total_j
        (3, (0.01, 0.1), None)
    """

    energy_per_epoch_j: float | None = None
    stable_lr: float | None = None
    energy_per_epoch_spread: float | None = None
    energy_per_epoch_resolution: float | None = None
    energy_total_j: float | None = None
    energy_explore_j: float | None = None
    energy_source: str | None = None
    energy_train_j: float | None = None
    energy_eval_j: float | None = None
    energy_invalid_windows: int | None = None
    epochs_trained: int | None = None
    explorations: int | None = None
    lr_window: tuple[float, float] | None = None
    lr_diverged_at: float | None = None
    resumed_from: int | None = None

    @classmethod
    def read(cls, user_attrs: Mapping[str, Any]) -> TrialAttrs:
        """The record ``user_attrs`` (a trial's) hold."""
        return cls(**{attr.name: attr.read(user_attrs) for attr in TRIAL_ATTRS})


class TrialWriter:
    """The one writer of a trial's SM² user attributes: :meth:`write` stores a value only
    when it differs from what the trial holds.

    What the trial holds is read where ``trial.set_user_attr`` keeps it in this process (no
    copy, no storage query), so every writer of one trial agrees, and so does a value the
    trial inherited: a retried trial starts with its predecessor's attributes, and only those
    of its own figures that differ are written. The energy book
    (:class:`~optuna_sm2.TrialEnergy`, whose :attr:`~optuna_sm2.TrialEnergy.writer` the
    objective's loop and the callbacks share), :func:`~optuna_sm2.report` and the callbacks
    write through it.

    Example:
        >>> import optuna
        >>> trial = optuna.trial.FixedTrial({})
        >>> writer = TrialWriter(trial)
        >>> writer.write(EPOCHS_TRAINED, 2), writer.write(EPOCHS_TRAINED, 2)
        (True, False)
        >>> writer.write(LR_WINDOW, (0.01, 0.1)), trial.user_attrs["sm2.lr_window"]
        (True, [0.01, 0.1])
    """

    def __init__(self, trial: optuna.trial.BaseTrial) -> None:
        self._trial = trial

    @property
    def trial(self) -> optuna.trial.BaseTrial:
        """The trial written to."""
        return self._trial

    def holds(self, attr: TrialAttr[Any]) -> bool:
        """Whether the trial holds ``attr`` (null included)."""
        return attr.key in _compat.held_user_attrs(self._trial)

    def write(self, attr: TrialAttr[_T], value: _T | None) -> bool:
        """Store ``value`` (``None``: null) as ``attr`` unless the trial holds it already;
        whether it was written."""
        stored = attr.to_json(value)
        held = _compat.held_user_attrs(self._trial)
        if attr.key in held and held[attr.key] == stored:
            return False
        self._trial.set_user_attr(attr.key, stored)
        return True
