from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import optuna
import pytest

from optuna_sm2 import SuccessiveHalvingEnergyPruner, report
from optuna_sm2.cli import main
from optuna_sm2.cli._common import open_storage
from tests.support.report_studies import build_sm2_study


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("optuna-sm2 report: error: ")
    return err


def test_text_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    assert main(["report", "--storage", url, "--study", "sm2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[2]
    assert header.split() == [
        "trial",
        "state",
        "batch",
        "stable",
        "LR",
        "J/epoch",
        "total",
        "J",
        "explore",
        "J",
        "last",
        "value",
        "step",
        "rung",
        "source",
    ]
    table = lines[2:9]
    # Right-aligned numeric columns end where their header ends.
    end = header.index("total J") + len("total J")
    # Trial 5 stored no energy total: unmeasured, never "0.0" (nor "-" as for other figures).
    assert [line[end - 10 : end] for line in table[1:]] == [
        "    1000.0",
        "     300.0",
        "     100.0",
        "      50.0",
        "      80.0",
        "unmeasured",
    ]
    assert "energy source: rapl" in out
    assert "total energy: 1530.0 J (0.425 Wh)" in out
    assert "exploration share: 15.7 %" in out
    assert "spent on pruned trials: 480.0 J" in out
    assert "trained to the end: 2800.0 J (0.7778 Wh)" in out
    assert "saving: 1270.0 J (0.3528 Wh), 45.4 % of the projection" in out
    assert "(20 - epochs trained)" in out and "(4 - explorations done)" in out
    assert "ESTIMATE" not in out


def test_estimates_are_labelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = build_sm2_study(tmp_path / "s.db", source="cpu-time-estimate")
    assert main(["report", "--storage", url, "--study", "sm2"]) == 0
    out = capsys.readouterr().out
    assert "cpu-time-estimate: the figures are ESTIMATES, not measurements" in out
    assert "total energy (estimated): 1530.0 J" in out
    assert "saving (estimated):" in out


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    assert main(["report", "--storage", url, "--study", "sm2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_energy_j"] == 1530.0
    assert data["projected_energy_j"] == 2800.0
    assert data["saving_j"] == 1270.0
    assert data["pruned_energy_j"] == 480.0
    assert data["energy_sources"] == ["rapl"]
    assert [t["rung"] for t in data["trials"]] == [2, 1, 0, 0, 0, None]  # 4 goes on from 3


def test_journal_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.log"
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    source = optuna.load_study(study_name="sm2", storage=build_sm2_study(tmp_path / "s.db"))
    optuna.copy_study(from_study_name="sm2", from_storage=source._storage, to_storage=journal)
    assert main(["report", "--storage", str(path), "--study", "sm2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_energy_j"] == 1530.0


def test_unknown_study_lists_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    build_sm2_study(tmp_path / "s.db", name="other")
    err = _error(capsys, ["report", "--storage", url, "--study", "nope"])
    assert "no study named 'nope'" in err and "available: other, sm2" in err


def test_missing_sqlite_file_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing.db"
    err = _error(capsys, ["report", "--storage", f"sqlite:///{path}", "--study", "x"])
    assert f"SQLite file {path}" in err and "does not exist" in err
    assert not path.exists()


def test_missing_journal_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing.jsonl"
    err = _error(capsys, ["report", "--storage", str(path), "--study", "x"])
    assert "does not exist" in err
    assert not path.exists()


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ("studies.db", "did you mean sqlite:///studies.db?"),
        ("nonsense", "not a storage URL: 'nonsense'"),
        ("nosuchdialect://x/y", "cannot open storage nosuchdialect://x/y"),
    ],
)
def test_malformed_storage(
    storage: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected in _error(capsys, ["report", "--storage", storage, "--study", "x"])


def test_not_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "text.db"
    path.write_text("not a database\n" * 100)
    err = _error(capsys, ["report", "--storage", f"sqlite:///{path}", "--study", "x"])
    assert "cannot" in err
    assert path.read_text() == "not a database\n" * 100


def test_empty_sqlite_is_not_an_optuna_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    err = _error(capsys, ["report", "--storage", f"sqlite:///{path}", "--study", "x"])
    assert "cannot" in err


def test_study_without_sm2_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="plain").optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1
    )
    assert "holds no SM² data" in _error(capsys, ["report", "--storage", url, "--study", "plain"])


def test_open_storage_may_create_when_asked(tmp_path: Path) -> None:
    journal = open_storage(str(tmp_path / "new.log"), must_exist=False)
    assert isinstance(journal, optuna.storages.JournalStorage)
    db = open_storage(f"sqlite:///{tmp_path / 'new.db'}", must_exist=False)
    assert isinstance(db, optuna.storages.RDBStorage)
    assert (tmp_path / "new.log").exists() and (tmp_path / "new.db").exists()


def test_rungs_are_explained_with_the_pruners_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    assert main(["report", "--storage", url, "--study", "sm2", "--alpha", "1"]) == 0
    out = capsys.readouterr().out
    assert "pruner: alpha 1, beta 0.5" in out and "α/β as given" in out
    assert "rung 0 (step 0): 4 competitors, the best 2 (and ties) promoted" in out
    rung_0 = out[out.index("rung 0 (step 0)") :].splitlines()[2:6]
    assert [line.split()[0] for line in rung_0] == ["0", "1", "2", "3"]
    assert [re.split(r"\s{2,}", line.strip())[-2:] for line in rung_0] == [
        ["promoted", "went on"],
        ["promoted", "went on"],
        ["pruned", "pruned"],
        ["pruned", "pruned"],  # trial 3 failed; its retry, trial 4, was pruned
    ]
    # A study that stores its pruner's settings is explained with them, whatever --alpha says.
    study = optuna.load_study(study_name="sm2", storage=url)
    study.set_user_attr("sm2.pruner", {"alpha": 0.5, "reduction_factor": 4, "version": "9"})
    assert main(["report", "--storage", url, "--study", "sm2", "--alpha", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pruner"]["alpha"] == 0.5 and data["pruner_origin"] == "study"
    assert data["rungs"][0]["promote_count"] == 1
    assert any("not with the alpha given" in note for note in data["notes"])


def test_unmeasured_partial_and_running_trials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from optuna.trial import TrialState

    from tests.support.report_studies import add, sm2_attrs

    url = build_sm2_study(tmp_path / "s.db")
    study = optuna.load_study(study_name="sm2", storage=url)
    partial = {**sm2_attrs(40.0, 10.0, 0.0123, 2, 1), "sm2.energy_invalid_windows": 2}
    add(study, TrialState.PRUNED, 64, partial, {0: 0.5})
    running = study.ask()
    running.set_user_attr("sm2.energy_total_j", 7.0)
    assert main(["report", "--storage", url, "--study", "sm2"]) == 0
    out = capsys.readouterr().out
    assert "0.0123" in out and "40.0*" in out
    assert "* partly measured: windows missing, the total is a lower bound" in out
    assert "total energy: 1577.0 J" in out and "7 of 8 trials measured" in out
    # The saving leaves the running trial out and says so: trial 6 adds
    # 40 + 0.0123 * 18 + 10 / 1 * 3 = 70.2214 J projected and 40 J spent.
    assert "running trials, left out of the projection and the saving" in out and ": 7" in out
    assert "saving: 1300.2 J" in out
    assert main(["report", "--storage", url, "--study", "sm2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trials"][5]["energy_total_j"] is None
    assert data["trials"][5]["energy_status"] == "unmeasured"
    assert data["trials"][6]["energy_invalid_windows"] == 2
    assert data["running_trials"] == [7]
    assert data["saving_j"] == pytest.approx(2800 + 70.2214 - 1570)


def test_nothing_measured_is_not_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from optuna.trial import TrialState

    from tests.support.report_studies import add

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="own")
    add(study, TrialState.PRUNED, 64, {"sm2.energy_per_epoch_j": 0.004213}, {0: 1.0})
    assert main(["report", "--storage", url, "--study", "own"]) == 0
    out = capsys.readouterr().out
    assert "total energy: unmeasured (none of the 1 trials holds sm2.energy_total_j)" in out
    assert "0.0 J" not in out and "0.00421" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["--alpha", "2"], "--alpha must be in [0, 1], got 2.0"), (["--beta", "-1"], "--beta")],
)
def test_bad_overrides(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    assert expected in _error(capsys, ["report", "--storage", url, "--study", "sm2", *argv])


def test_help_says_the_overrides_are_for_studies_without_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in ("report", "dashboard"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "used only for a study that does not store its pruner's settings" in text


def _lr_searching_study(url: str, n_trials: int) -> optuna.Study:
    """optuna-examples' pytorch_simple.py in miniature: ``lr`` is a searched hyperparameter,
    every trial reports its value and energy, none a stable LR."""
    study = optuna.create_study(
        study_name="lr",
        storage=url,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=SuccessiveHalvingEnergyPruner(rung_steps=[0]),
    )

    def objective(trial: optuna.trial.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        for step in range(2):
            report(trial, lr * (step + 1), step, energy_per_epoch_j=10.0 + trial.number % 3)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return lr

    study.optimize(objective, n_trials=n_trials)
    return study


def test_a_study_whose_loop_chooses_its_lr_says_once_what_ranked_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'lr.db'}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = _lr_searching_study(url, 12)
    assert not [w for w in caught if "is missing" in str(w.message)]
    assert main(["report", "--storage", url, "--study", "lr"]) == 0
    out = capsys.readouterr().out
    assert out.count("stable LR (sm2.stable_lr") == 1
    assert (
        "note: no trial reports a stable LR (sm2.stable_lr; its training loop chooses the LR): "
        "every rung is ranked by performance 0.857, energy 0.143" in out
    )
    assert "missing for trial" not in out
    assert main(["report", "--storage", url, "--study", "lr", "--json"]) == 0
    (rung,) = json.loads(capsys.readouterr().out)["rungs"]
    assert rung["unreported"] == ["lr"] and rung["left_out"] == {"lr": list(range(12))}

    # One trial that reports an LR makes the others' lack a mistake: listed, shortened.
    late = study.ask()
    with pytest.warns(UserWarning, match="stable learning rate is missing"):
        report(late, 0.5, 0, energy_per_epoch_j=1.0, stable_lr=0.1)
        late.should_prune()
    assert main(["report", "--storage", url, "--study", "lr"]) == 0
    out = capsys.readouterr().out
    assert "lr left out (missing for trial 0–11 (12 trials))" in out
    assert "no trial reports a stable LR" not in out
