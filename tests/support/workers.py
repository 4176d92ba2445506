"""Start ``optuna-sm2 worker`` processes at a tiny size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
