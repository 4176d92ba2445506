"""``StepDriver``: the one place that advances a trial's step generator.

``SM2Objective.__call__`` advances a trial until the pruner says stop, ``optimize_synchronous``
until its next rung; both ask :meth:`StepDriver.advance` with their own pause condition, and
the benchmark's arms run through one of the two.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from optuna_sm2.training._loop import PhaseResult


class StepDriver:
    """Advances the steps of one trial (:meth:`optuna_sm2.SM2Objective.run`).

    Example:
        .. code-block:: python

            driver = StepDriver(objective.run(trial))
            paused = driver.advance(lambda result: result.rung is not None)
            if paused is None:
                print("finished with", driver.value)
            driver.close()
    """

    def __init__(self, steps: Generator[PhaseResult, None, float]) -> None:
        self._steps = steps
        self._closed = False
        self.value: float | None = None
        """The trial's final metric once it has finished, else ``None``."""

    def advance(self, pause: Callable[[PhaseResult], bool]) -> PhaseResult | None:
        """Run steps until ``pause(result)`` is true and return that result; ``None`` when the
        trial has run to its end (its final metric is then :attr:`value`).

        Whatever a step raises (``optuna.TrialPruned`` for a diverged loss, a bad metric, ...)
        propagates; the generator is closed.

        Raises:
            RuntimeError: the driver was closed before the trial finished.
        """
        if self.value is not None:
            return None
        if self._closed:
            raise RuntimeError("the trial's steps were closed: it cannot advance any more")
        try:
            while True:
                try:
                    result = next(self._steps)
                except StopIteration as done:
                    self.value = float(done.value)
                    return None
                if pause(result):
                    return result
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the trial where it is (a no-op once it has finished)."""
        self._steps.close()
        self._closed = self.value is None
