"""``TrialEnergy``: the energy book of one trial, kept in the trial's user attributes."""

from __future__ import annotations

import contextlib
import logging
import statistics
from collections.abc import Iterator, Sequence
from typing import Any

import optuna

from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2._validation import check_choice
from optuna_sm2.energy import EnergyTracker, EnergyWindow, relative_resolution, shared_tracker

_logger = logging.getLogger(__name__)

PARTS = ("explore", "train", "eval")
"""The parts of a trial's energy: the LR exploration, thorough training, evaluation."""

_ATTRS: tuple[trial_attrs.TrialAttr[Any], ...] = (
    trial_attrs.ENERGY_TOTAL_J,
    *trial_attrs.ENERGY_PARTS_J.values(),
    trial_attrs.ENERGY_SOURCE,
    trial_attrs.ENERGY_INVALID_WINDOWS,
    trial_attrs.ENERGY_PER_EPOCH_SPREAD,
    trial_attrs.ENERGY_PER_EPOCH_RESOLUTION,
)
"""Every user attr the book owns."""


def measured(joules: float | None) -> float | None:
    """``joules``, a sum of valid windows, or ``None`` when there is none or it is 0 J: a meter
    that did not advance over the windows was too coarse to measure them (unmeasured, not free).

    Example:
        >>> measured(3.5), measured(0.0), measured(None)
        (3.5, None, None)
    """
    return joules if joules is not None and joules > 0.0 else None


def per_epoch_and_spread(joules: Sequence[float]) -> tuple[float | None, float | None]:
    """The figure to rank a block of epochs by, and how much its epochs varied.

    The figure is the median of the epochs' joules, which one disturbed epoch does not move.
    But a hardware counter advances in steps (an H100's NVML counter about every 50 ms, see
    ``docs/gpu-validation.md``), so an epoch shorter than a few steps reads 0 J or a whole
    step: when any epoch of the block read 0 J the median can be 0 though the block spent
    energy, and the figure is the mean, which the steps do not bias. A block whose epochs all
    read 0 J was not measured (below the meter's resolution): ``None``, never 0. The spread is
    the relative half-range ``(max - min) / (2 * figure)``. Both are ``None`` without epochs;
    the spread is ``None`` with one epoch.

    Example:
        >>> per_epoch_and_spread([10.0, 12.0, 9.0])
        (10.0, 0.15)
        >>> per_epoch_and_spread([10.0])
        (10.0, None)
        >>> per_epoch_and_spread([0.0, 4.0, 0.0, 4.0])  # a counter coarser than an epoch
        (2.0, 1.0)
        >>> per_epoch_and_spread([0.0, 0.0])
        (None, None)
    """
    if not joules:
        return None, None
    coarse = min(joules) <= 0.0
    figure = measured(float(statistics.fmean(joules) if coarse else statistics.median(joules)))
    if figure is None:
        return None, None
    if len(joules) == 1:
        return figure, None
    return figure, (max(joules) - min(joules)) / (2.0 * figure)


class TrialEnergy:
    """The energy book of one trial: windows booked by part, totals written to the trial.

    Each window is measured with an :class:`~optuna_sm2.EnergyTracker` (``with
    book.window("train"):``) or measured elsewhere and booked with :meth:`add` (for instance the
    window of :func:`~optuna_sm2.explore_lr`), under one of the parts ``explore``, ``train``
    and ``eval``. After every window the book writes to the trial, as user attributes, only
    what changed:

    - ``sm2.energy_invalid_windows``: how many windows could not be measured; always stored,
      from the moment the book is made;
    - ``sm2.energy_total_j`` and ``sm2.energy_explore_j``, ``sm2.energy_train_j``,
      ``sm2.energy_eval_j``: the joules of the valid windows. **Unmeasured is not zero**: a
      figure is stored only once a valid window measured it, and not while its windows read
      0 J in sum (a meter too coarse for them). A trial with no valid window has no
      total (the key absent, or null when the trial held one it inherited from a retried
      trial); a part with no window, or only invalid ones, has no figure; a partly measured
      figure is the sum of its valid windows, and the invalid count says how many are missing;
    - ``sm2.energy_source``: the label of the meters that measured, e.g. ``nvml-counter+rapl``;
    - ``sm2.energy_per_epoch_spread``: the spread of the current block of training epochs
      (:func:`per_epoch_and_spread`), null with one valid epoch; stored once a training window
      was booked;
    - ``sm2.energy_per_epoch_resolution``: how far the block's figure may be off because the
      meter advances in steps (:attr:`energy_per_epoch_resolution`), null without a figure;
      stored once a training window was booked.

    A block is the run of training epochs since :meth:`start_block` (SM² starts one with each
    exploration; a loop that never calls it has one block). :attr:`energy_per_epoch_j` is the
    block's figure (the median epoch, or the mean on a meter coarser than an epoch, see
    :func:`per_epoch_and_spread`): pass it to :func:`~optuna_sm2.report`, which stores it as
    ``sm2.energy_per_epoch_j`` for the pruner to rank.

    Windows of one book must not nest (their joules would count twice); one book per trial.
    An invalid window is logged (WARNING) and never booked; training goes on.

    Args:
        trial: The trial whose energy is booked.
        tracker: The tracker that measures :meth:`window`; ``None`` for this process's
            :func:`~optuna_sm2.energy.shared_tracker` (on :func:`~optuna_sm2.auto_meter`),
            opened at the first window.

    Example:
        .. code-block:: python

            import optuna
            from optuna_sm2 import EnergyTracker, TrialEnergy, report
            from optuna_sm2.energy import SimulatedMeter

            tracker = EnergyTracker(SimulatedMeter(power_w=50.0))

            def objective(trial):
                x = trial.suggest_float("x", -1.0, 1.0)
                energy = TrialEnergy(trial, tracker)
                for epoch in range(3):
                    with energy.window("train"):
                        sum(range(10_000))  # one training epoch
                    with energy.window("eval"):
                        value = -x * x
                    report(trial, value, epoch, energy_per_epoch_j=energy.energy_per_epoch_j)
                return value

            study = optuna.create_study(direction="maximize")
            study.optimize(objective, n_trials=2)
            print(study.trials[0].user_attrs["sm2.energy_total_j"])
    """

    def __init__(
        self, trial: optuna.trial.BaseTrial, tracker: EnergyTracker | None = None
    ) -> None:
        if not isinstance(trial, optuna.trial.BaseTrial):
            raise ValueError(f"`trial` must be an Optuna trial, got {trial!r}.")
        if tracker is not None and not isinstance(tracker, EnergyTracker):
            raise ValueError(f"`tracker` must be an EnergyTracker or None, got {tracker!r}.")
        self._trial = trial
        self._tracker = tracker
        self._joules: dict[str, float | None] = dict.fromkeys(PARTS)
        self._invalid = 0
        self._sources: set[str] = set()
        self._trained = False
        self._block: list[float] = []
        self._block_windows: list[tuple[float, float]] = []
        """``(seconds, update_period_s)`` of each of :attr:`_block`'s windows."""
        self._open = False
        self._writer = trial_attrs.TrialWriter(trial)
        self.store()

    @property
    def trial(self) -> optuna.trial.BaseTrial:
        """The trial written to."""
        return self._trial

    @property
    def writer(self) -> trial_attrs.TrialWriter:
        """The trial's writer, which the book stores with; SM²'s loop and callbacks write the
        trial's other attributes with it too."""
        return self._writer

    @property
    def tracker(self) -> EnergyTracker:
        """The tracker :meth:`window` measures with."""
        if self._tracker is None:
            self._tracker = shared_tracker()
        return self._tracker

    @property
    def explore_j(self) -> float | None:
        """Joules of the valid exploration windows; ``None`` before one (see :meth:`part_j`)."""
        return self.part_j("explore")

    @property
    def train_j(self) -> float | None:
        """Joules of the valid training windows; ``None`` before one (see :meth:`part_j`)."""
        return self.part_j("train")

    @property
    def eval_j(self) -> float | None:
        """Joules of the valid evaluation windows; ``None`` before one (see :meth:`part_j`)."""
        return self.part_j("eval")

    def part_j(self, part: str) -> float | None:
        """Joules of ``part``'s valid windows; ``None`` before one, and while they sum to 0 J:
        a meter that did not advance over them was too coarse to measure them (unmeasured,
        not free; see :func:`measured`)."""
        return measured(self._joules[check_choice("part", part, PARTS)])

    @property
    def total_j(self) -> float | None:
        """Joules of every valid window; ``None`` (unmeasured, not 0 J) before one, and while
        they sum to 0 J."""
        return measured(sum(j for j in self._joules.values() if j is not None))

    @property
    def invalid_windows(self) -> int:
        """How many windows could not be measured."""
        return self._invalid

    @property
    def source(self) -> str | None:
        """The labels of the windows booked, sorted and joined by ``+``; ``None`` before one."""
        return "+".join(sorted(self._sources)) if self._sources else None

    @property
    def energy_per_epoch_j(self) -> float | None:
        """The current block's valid training epochs' figure (:func:`per_epoch_and_spread`);
        ``None`` before one, or when the meter did not advance over any of them."""
        return per_epoch_and_spread(self._block)[0]

    @property
    def energy_per_epoch_spread(self) -> float | None:
        """The relative half-range of the current block's valid training epochs; ``None`` with
        fewer than two (see :func:`per_epoch_and_spread`)."""
        return per_epoch_and_spread(self._block)[1]

    @property
    def energy_per_epoch_resolution(self) -> float | None:
        """How far :attr:`energy_per_epoch_j` may be off, relative to it, because the meter
        advances in steps: :func:`~optuna_sm2.energy.relative_resolution` of the longest step
        of the block's meters over its median training window (1 for windows of at most two
        steps, 0 for a continuous meter); ``None`` when there is no figure. The robust ranking
        ties energies within it (``docs/energy.md``).

        Example:
            >>> import optuna
            >>> from optuna_sm2.energy import EnergyWindow
            >>> book = TrialEnergy(optuna.trial.FixedTrial({}))
            >>> for seconds in (2.1, 2.1, 4.0):
            ...     window = EnergyWindow("nvml-counter", False, update_period_s=0.1)
            ...     window.close(seconds, 100.0 * seconds)
            ...     _ = book.add("train", window)
            >>> book.energy_per_epoch_resolution
            0.05
        """
        if self.energy_per_epoch_j is None:
            return None
        period = max(p for _, p in self._block_windows)
        return relative_resolution(period, statistics.median(s for s, _ in self._block_windows))

    @contextlib.contextmanager
    def window(self, part: str) -> Iterator[EnergyWindow]:
        """Measure the enclosed block with :attr:`tracker` and book it under ``part`` on exit
        (also when the block raises: the energy was spent); then store."""
        check_choice("part", part, PARTS)
        if self._open:
            raise RuntimeError(
                "a TrialEnergy window is already open: windows of one book must not nest, "
                "their joules would be counted twice"
            )
        self._open = True
        window: EnergyWindow | None = None
        try:
            with self.tracker.window() as window:
                yield window
        finally:
            self._open = False
            if window is not None and window.closed:
                self.add(part, window)

    def add(self, part: str, window: EnergyWindow) -> float | None:
        """Book a closed window under ``part`` and store; its joules, or ``None`` when it is
        invalid (then it counts in ``sm2.energy_invalid_windows`` only)."""
        check_choice("part", part, PARTS)
        if not isinstance(window, EnergyWindow) or not window.closed:
            raise ValueError(f"`window` must be a closed EnergyWindow, got {window!r}.")
        self._sources.add(window.source)
        self._trained = self._trained or part == "train"
        joules: float | None = None
        if window.valid:
            joules = window.joules
            self._joules[part] = (self._joules[part] or 0.0) + joules
            if part == "train":
                self._block.append(joules)
                self._block_windows.append((window.seconds, window.update_period_s))
        else:
            self._invalid += 1
            _logger.warning(
                "trial %s: %s energy window invalid, not counted: %s",
                self._trial.number,
                part,
                window.invalid_reason,
            )
        self.store()
        return joules

    def start_block(self) -> None:
        """Start a new block of training epochs (SM²: after each exploration); store."""
        self._block = []
        self._block_windows = []
        self.store()

    def user_attrs(self) -> dict[str, Any]:
        """The book's figures as the trial stores them; a figure not measured has no key."""
        return {attr.key: attr.to_json(value) for attr, value in self._figures().items()}

    def _figures(self) -> dict[trial_attrs.TrialAttr[Any], Any]:
        figures: dict[trial_attrs.TrialAttr[Any], Any] = {
            trial_attrs.ENERGY_INVALID_WINDOWS: self._invalid
        }
        total = self.total_j
        if total is not None:
            figures[trial_attrs.ENERGY_TOTAL_J] = total
        for part, attr in trial_attrs.ENERGY_PARTS_J.items():
            joules = self.part_j(part)
            if joules is not None:
                figures[attr] = joules
        if self.source is not None:
            figures[trial_attrs.ENERGY_SOURCE] = self.source
        if self._trained:
            figures[trial_attrs.ENERGY_PER_EPOCH_SPREAD] = self.energy_per_epoch_spread
            figures[trial_attrs.ENERGY_PER_EPOCH_RESOLUTION] = self.energy_per_epoch_resolution
        return figures

    def store(self) -> None:
        """Write to the trial what it does not hold already (its :attr:`writer`). A figure
        the trial holds but the book has not measured (inherited from a retried trial) is set
        to null."""
        figures = self._figures()
        for attr in _ATTRS:
            if attr in figures or self._writer.holds(attr):
                self._writer.write(attr, figures.get(attr))
