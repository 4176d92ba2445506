"""Command-line values: checked with their ranges while parsing, one line and exit 2 if bad."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from optuna_sm2.cli._options import N_LRS_MIN
from tests.support.cli import assert_refused, fingerprint, run_cli

WORKER = ["worker", "--scenario", "demo", "--study", "s", "--n-trials", "1"]


def test_the_n_lrs_bound_is_the_sweeps() -> None:
    from optuna_sm2.lr._selection import MIN_LRS

    assert N_LRS_MIN == MIN_LRS


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n-trials", "0"], "--n-trials must be >= 1, got 0"),
        (["--n-trials", "two"], "--n-trials must be an integer >= 1, got 'two'"),
        (["--heartbeat-interval", "1e14"], "--heartbeat-interval must be an integer >= 1 and"),
        (["--heartbeat-interval", "86401"], "must be >= 1 and <= 86400, got 86401"),
        (["--n-lrs", "0"], "--n-lrs must be >= 3 and <= 1000, got 0"),
        (["--n-lrs", "2"], "--n-lrs must be >= 3 and <= 1000, got 2"),
        (["--alpha", "2"], "--alpha must be >= 0 and <= 1, got 2"),
        (["--beta=-0.5"], "--beta must be >= 0 and <= 1, got -0.5"),
        (["--alpha", "nan"], "--alpha must be >= 0 and <= 1, got nan"),
        (["--epochs-per-rung", "0"], "--epochs-per-rung must be >= 1 and <= 1000, got 0"),
        (["--final-epochs", "1e9"], "--final-epochs must be an integer >= 0 and <= 10000"),
        (["--study", ""], "--study must be non-empty text without NUL characters, got ''"),
        (["--study", " \t"], "--study must not be blank (white space only), got ' \\t'"),
        (["--study", "x" * 513], "--study must be at most 512 characters, got 513"),
        (["--gpu", ""], "--gpu must be non-empty text"),
    ],
)
def test_worker_refuses_bad_values_before_creating_anything(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    storage = tmp_path / "s.log"
    assert_refused(*run_cli([*WORKER, "--storage", str(storage), *argv]), "worker", message)
    assert not storage.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n-lrs", "1"], "--n-lrs must be >= 3 and <= 1000, got 1"),
        (["--n-lrs", "0"], "--n-lrs must be >= 3"),
        (["--fresh", "--alpha", "2"], "--alpha must be >= 0 and <= 1, got 2"),
        (["--final-epochs=-1"], "--final-epochs must be >= 0 and <= 10000, got -1"),
    ],
)
def test_demo_refuses_bad_values_before_deleting_anything(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    from tests.support.cli import demo_study

    path = tmp_path / "demo.db"
    url = f"sqlite:///{path}"
    demo_study(url, "sm2-demo", n_trials=2)
    before = fingerprint(path)
    assert_refused(*run_cli(["demo", "--storage", url, *argv]), "demo", message)
    assert fingerprint(path) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "0"], "--seeds must be >= 1 and <= 100, got 0"),
        (["--seed=-1"], "--seed must be >= 0 and <= 4294967295, got -1"),
        (["--threads", "0"], "--threads must be >= 1 and <= 1024, got 0"),
        (["--arms", "sm2,tpe"], "--arms must be a comma-separated selection of vanilla, alpha1"),
        (["--arms", "sm2,sm2"], "(a name repeats)"),
        (["--budget", "huge"], "argument --budget: invalid choice: 'huge'"),
        (["--scenario", "audio"], "argument --scenario: invalid choice: 'audio'"),
    ],
)
def test_bench_refuses_bad_values(argv: list[str], message: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_refused(*run_cli(["bench", "--out", str(out), *argv]), "bench", message)
    assert not out.exists()


def test_argparse_errors_are_one_line(tmp_path: Path) -> None:
    err = assert_refused(*run_cli(["bench"]), "bench", "the following arguments are required")
    assert err.endswith("(see optuna-sm2 bench --help)\n")
    assert_refused(*run_cli(["worker", "--storage", "x.log"]), "worker", "--study")


def _fake_runner(calls: list[dict[str, Any]]) -> Any:
    def run_bench(
        names, budget, out_dir, *, seed=0, device="cpu", progress=None, seeds=1, arms=None
    ):
        calls.append({"names": names, "seeds": seeds, "arms": arms})
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        Path(out_dir, "results.md").write_text("| table |\n")
        return {}

    return run_bench


def test_bench_passes_seeds_and_arms_to_the_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optuna_sm2 import scenarios

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(scenarios, "run_bench", _fake_runner(calls))
    argv = ["bench", "--scenario", "household", "--budget", "tiny", "--out", str(tmp_path)]
    code, out, err = run_cli([*argv, "--seeds", "3", "--arms", "sm2, vanilla"])
    assert code == 0, err
    assert calls[0] == {"names": ["household"], "seeds": 3, "arms": ("sm2", "vanilla")}
    assert "| table |" in out
    assert run_cli(argv)[0] == 0  # without them, the runner's defaults
    assert calls[1] == {"names": ["household"], "seeds": 1, "arms": None}


def test_bench_refuses_an_out_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "results"
    path.write_text("keep me")
    argv = ["bench", "--scenario", "household", "--budget", "tiny", "--out", str(path)]
    assert_refused(*run_cli(argv), "bench", f"--out {path} exists and is not a folder")
    assert path.read_text() == "keep me"


@pytest.mark.parametrize("missing", ["torch", "sklearn"])
@pytest.mark.parametrize("command", ["demo", "worker"])
def test_training_commands_without_their_packages_give_one_line(
    command: str, missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules is what importlib reports as "not installed".
    monkeypatch.setitem(sys.modules, missing, None)
    storage = tmp_path / "s.log"
    argv = ["demo", "--study", "s"] if command == "demo" else WORKER
    err = assert_refused(*run_cli([*argv, "--storage", str(storage)]), command, "trains models")
    assert {"torch": "PyTorch", "sklearn": "scikit-learn"}[missing] in err
    assert not storage.exists()
