"""``python -m tests.support.synchronous_run STORAGE POINT SIGNAL [CHECKPOINT_DIR [dropout]]``:
run the tiny synchronous study of :mod:`tests.support.synchronous` and send this process
``SIGNAL`` (``KILL`` or ``INT``) at ``POINT``, one of :data:`~tests.support.synchronous.POINTS`
or ``mid decision`` (after two losers of the first rung were told PRUNED); ``none`` runs it to
the end. A storage ending in ``.log`` is a journal file, anything else a database URL;
``dropout`` runs the workload of :data:`~tests.support.synchronous.DROPOUT`."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import optuna
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_sm2 import optimize_synchronous
from tests.support.synchronous import DROPOUT, POINTS, counting_objective

STUDY = "killed"


def storage_of(url: str) -> Any:
    return JournalStorage(JournalFileBackend(url)) if url.endswith(".log") else url


def main(
    url: str, point: str, sig: str, checkpoint_dir: str | None = None, workload: str = ""
) -> None:
    number = getattr(signal, f"SIG{sig}")

    def die(*_: Any) -> None:
        os.kill(os.getpid(), number)

    def at_point(trial: optuna.trial.Trial, result: Any) -> None:
        if point in POINTS and POINTS[point](result):
            die()

    options = DROPOUT if workload == "dropout" else {}
    objective = counting_objective(checkpoint_dir=checkpoint_dir, callbacks=[at_point], **options)
    study = optuna.create_study(
        storage=storage_of(url),
        study_name=STUDY,
        direction="maximize",
        pruner=objective.make_pruner(),
        load_if_exists=True,
    )
    if point == "mid decision":
        tell, pruned = study.tell, []

        def tell_then_die(trial: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("state") == TrialState.PRUNED:
                if len(pruned) == 2:
                    die()
                pruned.append(1)
            return tell(trial, *args, **kwargs)

        study.tell = tell_then_die  # type: ignore[method-assign]
    optimize_synchronous(study, objective)
    print("finished", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    main(*sys.argv[1:])
