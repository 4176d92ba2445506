"""``EnergyBook``: what one trial has spent so far, by part (exploration, training, evaluation).

The book knows energy windows and attribute names, not torch or Optuna: the trial loop adds each
window under its part and writes :meth:`EnergyBook.to_user_attrs` to the trial.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal, get_args

from optuna_sm2 import attrs as _attrs

if TYPE_CHECKING:
    from optuna_sm2.energy import EnergyWindow

_logger = logging.getLogger(__name__)

Part = Literal["explore", "train", "eval"]
PARTS: tuple[Part, ...] = get_args(Part)


class EnergyBook:
    """The joules of one trial by part, and the meters they came from.

    Example:
        >>> from optuna_sm2.energy import EnergyTracker, SimulatedMeter
        >>> tracker, book = EnergyTracker(SimulatedMeter(power_w=10.0)), EnergyBook()
        >>> with tracker.window() as window:
        ...     pass
        >>> book.add("train", window) == window.joules, book.total_j == book.train_j
        (True, True)
    """

    def __init__(self) -> None:
        self._joules: dict[Part, float] = dict.fromkeys(PARTS, 0.0)
        self._sources: set[str] = set()
        self.invalid_windows = 0
        """Windows that could not be measured (not booked)."""

    def add(self, part: Part, window: EnergyWindow) -> float | None:
        """Book a closed window under ``part``; its joules, or ``None`` if it is invalid."""
        if part not in self._joules:
            raise ValueError(f"`part` must be one of {', '.join(PARTS)}, got {part!r}.")
        self._sources.add(window.source)
        if not window.valid:
            self.invalid_windows += 1
            _logger.warning("energy window invalid (%s): not counted", window.invalid_reason)
            return None
        self._joules[part] += window.joules
        return window.joules

    @property
    def explore_j(self) -> float:
        """Joules of the exploratory sweeps."""
        return self._joules["explore"]

    @property
    def train_j(self) -> float:
        """Joules of the thorough epochs."""
        return self._joules["train"]

    @property
    def eval_j(self) -> float:
        """Joules of the evaluations."""
        return self._joules["eval"]

    @property
    def total_j(self) -> float:
        """Joules of every part."""
        return sum(self._joules.values())

    @property
    def source(self) -> str:
        """The meters' labels joined by ``+``; ``none`` before the first window."""
        return "+".join(sorted(self._sources)) if self._sources else "none"

    def to_user_attrs(self) -> dict[str, Any]:
        """The trial's energy attributes (see docs/stored-data.md)."""
        return {
            _attrs.ENERGY_TOTAL_J: self.total_j,
            _attrs.ENERGY_EXPLORE_J: self.explore_j,
            _attrs.ENERGY_TRAIN_J: self.train_j,
            _attrs.ENERGY_EVAL_J: self.eval_j,
            _attrs.ENERGY_SOURCE: self.source,
        }
