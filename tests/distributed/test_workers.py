"""Many worker processes on one storage: PostgreSQL and a journal file."""

from __future__ import annotations

from collections.abc import Iterator

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2 import attrs
from optuna_sm2.pruners import own_records
from optuna_sm2.pruners._records import rung_key
from tests.support.servers import postgres_database
from tests.support.workers import start_worker


@pytest.fixture
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database: workers started together must also create Optuna's schema."""
    with postgres_database() as url:
        yield url


def _run_workers(storage_url: str, study_name: str, tmp_path, n_workers=4, n_trials=2):
    workers = [
        start_worker(storage_url, study_name, n_trials, tmp_path / "ckpt")
        for _ in range(n_workers)
    ]
    for w in workers:
        out, err = w.communicate(timeout=400)
        assert w.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        assert "done; the study holds" in out


def _check_study(study: optuna.Study, expected_trials: int) -> None:
    trials = study.get_trials()
    assert len(trials) == expected_trials
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert any(t.state == TrialState.COMPLETE for t in trials)
    rung_steps = study.user_attrs[attrs.SCHEDULE]["rung_steps"]
    for t in trials:
        for key in (attrs.ENERGY_TOTAL_J, attrs.ENERGY_PER_EPOCH_J, attrs.STABLE_LR):
            assert key in t.user_attrs, (t.number, key)
        records = own_records(t.number, t.system_attrs)
        # Rungs are held without gaps, each written at its step with the value reported there.
        assert sorted(records) == list(range(len(records)))
        for rung, record in records.items():
            assert record.value == t.intermediate_values[rung_steps[rung]]
        # No record of another trial, and a pruned trial stopped at a rung it held.
        assert all(
            v["trial"] == t.number for k, v in t.system_attrs.items() if k.startswith("sm2:rung")
        )
        if t.state == TrialState.PRUNED:
            assert max(t.intermediate_values) == rung_steps[len(records) - 1]
        assert rung_key(0) in t.system_attrs


def test_four_workers_on_a_journal_file(tmp_path):
    journal = str(tmp_path / "study.log")
    _run_workers(journal, "shared", tmp_path)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    _check_study(optuna.load_study(study_name="shared", storage=storage), 8)


def test_four_workers_on_postgresql(tmp_path, fresh_postgres_database):
    _run_workers(fresh_postgres_database, "shared", tmp_path)
    _check_study(optuna.load_study(study_name="shared", storage=fresh_postgres_database), 8)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n-trials", "0"], "--n-trials must be >= 1, got 0"),
        (["--n-trials", "1", "--gpu", "0"], "--gpu 0 given, but torch sees no CUDA device"),
        (["--n-trials", "1", "--heartbeat-interval", "0"], "--heartbeat-interval must be >= 1"),
    ],
)
def test_worker_bad_input_is_one_line(extra, message, tmp_path, capsys):
    from optuna_sm2.cli import main

    if "--gpu" in extra:
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    storage = str(tmp_path / "s.log")
    code = main(["worker", "--storage", storage, "--study", "s", "--scenario", "demo", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "s.log").exists()  # nothing written for a refused command


def test_worker_unreachable_database_is_one_line(capsys):
    from optuna_sm2.cli import main

    storage = "postgresql://nobody@127.0.0.1:1/x"
    code = main(
        ["worker", "--storage", storage, "--study", "s", "--scenario", "demo", "--n-trials", "1"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot open storage" in err


def test_worker_runs_a_benchmark_scenario(tmp_path):
    journal = str(tmp_path / "household.log")
    worker = start_worker(
        journal, "household", 1, tmp_path / "ckpt", "--budget", "tiny", scenario="household"
    )
    _, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err[-3000:]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    study = optuna.load_study(study_name="household", storage=storage)
    assert study.user_attrs[attrs.SCHEDULE]["metric_name"] == "r2"
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs[attrs.ENERGY_TOTAL_J] > 0
