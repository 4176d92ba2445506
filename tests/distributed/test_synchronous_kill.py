"""SIGKILL and Ctrl-C of a real process running optimize_synchronous, at several points of the
schedule; a second process finishes the study.

The process signals itself at an exact step (``tests/support/synchronous_run.py``), so that every
point is hit on a loaded machine too. The workload is deterministic and runs without
checkpoints here (a retry trains again from its configuration's seed), so the finished study
must hold the very decisions of an uninterrupted run; one case resumes from checkpoints.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2 import attrs
from optuna_sm2.analysis._summary import summarize_study
from optuna_sm2.pruners import own_records
from optuna_sm2.training._configurations import read_configurations
from optuna_sm2.training._run_lease import stored_lease
from tests.support.synchronous import assert_finished, counting_objective, outcomes
from tests.support.synchronous_run import STUDY, main, storage_of

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _kill(url: str, point: str, sig: str, ckpt: Path | None = None, workload: str = "") -> int:
    """Run the study in a process that gets ``SIG<sig>`` at ``point``; its exit code."""
    args = [url, point, sig, *([str(ckpt), workload] if ckpt else [])]
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.synchronous_run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "finished" not in done.stdout, done.stderr[-3000:]
    return done.returncode


def _run(url: str, ckpt: Path | None = None, workload: str = "") -> None:
    """Run the study to its end here, in another process than the one killed."""
    main(url, "none", "KILL", None if ckpt is None else str(ckpt), workload)


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=storage_of(url))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[str, int]]:
    url = str(tmp_path_factory.mktemp("whole") / "study.log")
    _run(url)
    return outcomes(_study(url))


CASES = [
    ("KILL", "before the first rung", "journal"),
    ("KILL", "at the first rung, before its record", "journal"),
    ("KILL", "mid decision", "sqlite"),
    ("KILL", "during the final epochs", "journal"),
    ("INT", "between rungs", "journal"),
    ("INT", "at the last rung", "sqlite"),
]


@pytest.mark.parametrize(("sig", "point", "kind"), CASES)
def test_killed_then_run_again_finishes_with_the_same_decisions(
    tmp_path: Path, sig: str, point: str, kind: str, uninterrupted: dict[int, tuple[str, int]]
) -> None:
    url = str(tmp_path / "study.log") if kind == "journal" else f"sqlite:///{tmp_path / 's.db'}"
    code = _kill(url, point, sig)
    assert code == -getattr(signal, f"SIG{sig}") or (sig == "INT" and code == 130), code
    killed = _study(url)
    lease = stored_lease(killed)
    assert lease is not None and lease.released == (sig == "INT")  # SIGKILL cannot release
    assert not all(t.state.is_finished() for t in killed.trials)

    _run(url)  # the same study, run again
    study = _study(url)
    assert_finished(study, counting_objective())
    assert outcomes(study) == uninterrupted
    lease = stored_lease(study)
    assert lease is not None and lease.released


def test_killed_mid_block_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    url, ckpt = str(tmp_path / "study.log"), tmp_path / "ckpt"
    assert _kill(url, "between rungs", "KILL", ckpt) == -signal.SIGKILL
    # The survivors of the first rung: one killed in its next block, the others waiting for it.
    dead = [t.number for t in _study(url).trials if t.state == TrialState.RUNNING]
    assert len(dead) == 4
    _run(url, ckpt)
    study = _study(url)
    assert_finished(study, counting_objective())
    for number in dead:
        assert study.trials[number].state == TrialState.FAIL
        (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == number]
        assert retry.user_attrs[attrs.RESUMED_FROM] == number  # from its rung-0 checkpoint
    # Each trial books what it ran; the report adds them once, over finished trials only.
    report = summarize_study(study)
    assert report.total_energy_j == sum(
        t.user_attrs.get(attrs.ENERGY_TOTAL_J, 0.0) for t in study.trials
    )
    assert all(t.state != TrialState.RUNNING for t in study.trials)


def _replayed(study: optuna.Study) -> dict[int, Any]:
    """Per batch size: how its configuration ended, the value and LR of each of its rung
    records, every step's value, its final value, and the LR and window of its last
    exploration."""
    result = {}
    for configuration in read_configurations(study).values():
        current = configuration.current
        rungs = {
            rung: (record.value, record.stable_lr)
            for trial in configuration.trials
            for rung, record in own_records(trial.number, trial.system_attrs).items()
        }
        result[configuration.batch_size] = (
            current.state.name,
            rungs,
            current.intermediate_values,
            current.value,
            current.user_attrs.get(attrs.STABLE_LR),
            current.user_attrs.get(attrs.LR_WINDOW),
        )
    return result


@pytest.fixture(scope="module")
def uninterrupted_dropout(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Any]:
    path = tmp_path_factory.mktemp("whole-dropout")
    _run(str(path / "study.log"), path / "ckpt", "dropout")
    return _replayed(_study(str(path / "study.log")))


@pytest.mark.parametrize("point", ["between rungs", "during the final epochs"])
def test_killed_then_resumed_from_checkpoints_replays_the_same_run(
    tmp_path: Path, point: str, uninterrupted_dropout: dict[int, Any]
) -> None:
    """Killed right after an exploration was reported (the first of block 1, or of the final
    block), the study resumed from its checkpoints is the uninterrupted run: the resumed trials
    explore the same batches with the same dropout masks, so they select the same LRs and
    reach the same values, to the last bit on one CPU thread."""
    url, ckpt = str(tmp_path / "study.log"), tmp_path / "ckpt"
    assert _kill(url, point, "KILL", ckpt, "dropout") == -signal.SIGKILL
    _run(url, ckpt, "dropout")
    study = _study(url)
    assert_finished(study, counting_objective())
    resumed = [t for t in study.trials if attrs.RESUMED_FROM in t.user_attrs]
    assert resumed  # the killed trial went on from its checkpoint, not from scratch
    assert _replayed(study) == uninterrupted_dropout
