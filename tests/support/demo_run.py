"""``python -m tests.support.demo_run POINT SIGNAL DEMO-ARGS...``: ``optuna-sm2 demo DEMO-ARGS``
that sends itself ``SIGNAL`` (``KILL`` or ``INT``) once its study reaches ``POINT``, one of
:data:`POINTS`.

The demo checks the point after every step of every trial (a callback of its objective), so the
signal falls at that point of the schedule whatever the machine's speed; a test that polled the
storage from outside could see the point late, after the demo had moved on or even finished.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_sm2.cli import main
from optuna_sm2.scenarios import digits

#: The demo's rungs with ``--epochs-per-rung 1 --final-epochs 2``: steps 1, 3 and 5.
LAST_RUNG_STEP = 5


def _pruned(trials: list[FrozenTrial]) -> int:
    return sum(t.state == TrialState.PRUNED for t in trials)


POINTS: dict[str, Callable[[list[FrozenTrial]], bool]] = {
    "before the first rung": lambda ts: any(t.last_step == 0 for t in ts) and not _pruned(ts),
    "between rungs": lambda ts: _pruned(ts) >= 4 and any(t.last_step == 2 for t in ts),
    "during the final epochs": lambda ts: any(
        t.state == TrialState.RUNNING and (t.last_step or 0) > LAST_RUNG_STEP for t in ts
    ),
}


def run(point: str, sig: str, argv: list[str]) -> int:
    reached, number = POINTS[point], getattr(signal, f"SIG{sig}")
    build = digits.SM2Objective

    def at_point(trial: optuna.trial.Trial, result: Any) -> None:
        if reached(trial.study.get_trials(deepcopy=False)):
            os.kill(os.getpid(), number)

    def with_signal(*args: Any, **kwargs: Any) -> Any:
        return build(*args, **kwargs, callbacks=[at_point])

    digits.SM2Objective = with_signal  # type: ignore[misc]
    return main(["demo", *argv])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2], sys.argv[3:]))
