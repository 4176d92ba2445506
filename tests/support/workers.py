"""Start ``optuna-sm2 worker`` processes at a tiny size, and wait for one to be worth killing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from optuna_sm2 import attrs
from optuna_sm2.cli._common import CLIError, open_storage
from optuna_sm2.training._checkpoint import study_directory

TINY = ["--epochs-per-rung", "1", "--final-epochs", "1", "--n-lrs", "6"]


def start_worker(
    storage: str,
    study: str,
    n_trials: int,
    checkpoint_dir: Path,
    *extra: str,
    scenario: str = "demo",
) -> subprocess.Popen[str]:
    """A worker process; ``extra`` options replace the TINY size."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "optuna_sm2.cli",
            "worker",
            "--storage",
            storage,
            "--study",
            study,
            "--scenario",
            scenario,
            "--n-trials",
            str(n_trials),
            "--checkpoint-dir",
            str(checkpoint_dir),
            *(extra or TINY),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_training_past_a_checkpoint(
    worker: subprocess.Popen[str], url: str, study_name: str, ckpt: Path, deadline_s: float = 240
) -> None:
    """Poll until a trial trains past its first rung's checkpoint, one trial finished before.

    ``url`` is the worker's ``--storage``, ``ckpt`` its ``--checkpoint-dir``. A
    trial whose latest step is a rung step may be pruned any moment; one between rungs is
    training and stays RUNNING for several steps, long enough for a kill to land there.
    """
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert worker.poll() is None, "the worker finished before it could be killed"
        try:
            study = optuna.load_study(study_name=study_name, storage=open_storage(url))
            trials, rungs = study.get_trials(), study.user_attrs[attrs.SCHEDULE]["rung_steps"]
            directory = study_directory(ckpt, study)
        except (KeyError, ValueError, CLIError, optuna.exceptions.OptunaError):
            # The storage or the study is not created yet: poll again.
            trials, rungs = [], []
        if any(t.state.is_finished() for t in trials):
            for t in trials:
                if (
                    t.state == TrialState.RUNNING
                    and (directory / f"{t.number}.pt").exists()
                    and t.last_step is not None
                    and t.last_step > rungs[0]
                    and t.last_step not in rungs
                ):
                    return
        time.sleep(0.05)
    raise AssertionError("no trial reached a checkpoint in time")
