"""optuna-examples' PyTorch and Lightning simple scripts and the Transformers docs'
``hyperparameter_search`` example, ported to SM² with only the changes
docs/your-training-code.md lists (examples/ported/), run as a user runs them: each study ends
with energy on every trial, pruned trials among them, and ``optuna-sm2 report`` reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from optuna_sm2 import attrs
from optuna_sm2.cli import main

PORTED = Path(__file__).resolve().parents[2] / "examples" / "ported"
PAGE = Path(__file__).resolve().parents[2] / "docs" / "your-training-code.md"


def _run(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: one thread is fastest
    done = subprocess.run(
        [sys.executable, "-W", "always", str(PORTED / script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _check_study(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> tuple[list[optuna.trial.FrozenTrial], dict[str, object]]:
    storage = f"sqlite:///{tmp_path / name}.db"
    trials = optuna.load_study(study_name=name, storage=storage).trials
    states = {t.state for t in trials}
    assert states == {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    for trial in trials:
        user = trial.user_attrs
        assert user[attrs.ENERGY_TOTAL_J] > 0.0, trial.number
        assert user[attrs.ENERGY_PER_EPOCH_J] > 0.0, trial.number
        assert user[attrs.ENERGY_SOURCE], trial.number
    capsys.readouterr()
    assert main(["report", "--storage", storage, "--study", name, "--json"]) == 0
    summary: dict[str, object] = json.loads(capsys.readouterr().out)
    assert summary["total_energy_j"] == pytest.approx(
        sum(t.user_attrs[attrs.ENERGY_TOTAL_J] for t in trials)
    )
    return trials, summary


@pytest.mark.slow
def test_pytorch_simple(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The loop searches its own LR: no stable LR, no warning about it, and the report says
    once that the rungs were ranked by performance and energy."""
    done = _run("pytorch_simple.py", tmp_path)
    assert "is missing" not in done.stderr
    trials, summary = _check_study(tmp_path, "pytorch_simple", capsys)
    assert all(attrs.STABLE_LR not in t.user_attrs for t in trials)
    assert all(attrs.ENERGY_EXPLORE_J not in t.user_attrs for t in trials)
    notes = summary["notes"]
    assert isinstance(notes, list)
    assert [n for n in notes if n.startswith("no trial reports a stable LR")] == [
        "no trial reports a stable LR (sm2.stable_lr; its training loop chooses the LR): every "
        "rung is ranked by performance 0.857, energy 0.143 (the weights renormalized to sum 1)"
    ]


@pytest.mark.slow
def test_pytorch_lightning_simple(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``import lightning.pytorch as pl``, as the original: the callback sweeps the LR of the
    module's Adam at each block and books the sweep as exploration."""
    _run("pytorch_lightning_simple.py", tmp_path)
    trials, _ = _check_study(tmp_path, "pytorch_lightning_simple", capsys)
    for trial in trials:
        assert trial.user_attrs[attrs.STABLE_LR] > 0.0
        assert trial.user_attrs[attrs.ENERGY_EXPLORE_J] > 0.0
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(attrs.PRUNED_AT_EPOCH in t.system_attrs for t in pruned)


@pytest.mark.slow
def test_transformers_hyperparameter_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``trainer.hyperparameter_search`` searches its own LR: the callback reports at epoch
    indices (every batch size meets the rungs after the same epochs), no stable LR."""
    pytest.importorskip("transformers")
    _run("transformers_hyperparameter_search.py", tmp_path)
    trials, _ = _check_study(tmp_path, "transformers_hyperparameter_search", capsys)
    for trial in trials:
        epochs = trial.user_attrs[attrs.EPOCHS_TRAINED]
        assert sorted(trial.intermediate_values) == list(range(epochs)), trial.number
        assert attrs.STABLE_LR not in trial.user_attrs


@pytest.mark.parametrize("script", sorted(p.name for p in PORTED.glob("*.py")))
def test_every_sm2_change_is_listed_in_the_docs(script: str) -> None:
    """Each line a ported script marks ``# SM²`` is a change the page lists for its framework
    (the ``CI:`` lines only make it run offline and fast)."""
    page = PAGE.read_text(encoding="utf-8")
    marked = [
        line.split("#")[0].strip()
        for line in (PORTED / script).read_text(encoding="utf-8").splitlines()
        if "# SM²" in line and line.split("#")[0].strip()
    ]
    assert marked
    for code in marked:
        assert code.rstrip(",") in page, code
