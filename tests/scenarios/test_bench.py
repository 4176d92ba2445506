"""The bench's arms, seeds and comparisons (the ``tiny`` budget; seconds each)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from optuna_sm2.cli import _bench as cli_bench
from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.scenarios import Scenario, load_scenario
from optuna_sm2.scenarios._arms import run_grid, run_tpe_hyperband, run_vanilla
from optuna_sm2.scenarios._bench import run_bench
from optuna_sm2.scenarios._results import (
    ARMS,
    ArmResult,
    ArmRuns,
    ScenarioResult,
    Spread,
    StepRecord,
)
from tests.support.cli import assert_refused, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def household() -> Scenario:
    return load_scenario("household", "tiny")


def _per_trial(run: ArmResult) -> dict[int, list[StepRecord]]:
    trials: dict[int, list[StepRecord]] = {}
    for record in run.steps:
        trials.setdefault(record.trial, []).append(record)
    return trials


def test_the_cli_offers_the_arms_the_runner_knows() -> None:
    assert cli_bench.ARMS == ARMS


def test_tpe_hyperband_samples_the_grid_range_and_keeps_the_best_completed(
    household: Scenario,
) -> None:
    budget = household.budget
    epochs = budget.schedule.train_epochs_total
    run = run_tpe_hyperband(household, SimulatedMeter(power_w=100.0), seed=3)
    assert run.arm == "tpe_hyperband" and run.seed == 3
    assert run.n_trials == 2 * len(budget.batch_sizes)
    trials = _per_trial(run)
    assert sorted(trials) == list(range(run.n_trials))
    for records in trials.values():
        assert all(r.kind == "train" for r in records)
        assert len({(r.batch_size, r.lr) for r in records}) == 1  # one configuration per trial
        assert records[0].batch_size in budget.batch_sizes
        assert budget.lr_min <= records[0].lr <= budget.lr_max
        assert 1 <= len(records) <= epochs
    assert run.chosen_trial is not None
    chosen = trials[run.chosen_trial]
    assert len(chosen) == epochs  # a completed trial trained every epoch
    assert run.final_metric == chosen[-1].value
    assert run.best_params == {"batch_size": chosen[0].batch_size, "lr": chosen[0].lr}
    completed = [records[-1].value for records in trials.values() if len(records) == epochs]
    assert run.final_metric == max(completed)  # R²: larger is better
    train_j = math.fsum(r.energy_per_epoch_j or 0.0 for r in run.steps)
    assert run.total_energy_j > train_j > 0  # the evaluations are counted too
    assert run.chosen_epochs == epochs
    assert run.search_overhead == pytest.approx(
        run.total_energy_j / math.fsum(r.energy_per_epoch_j or 0.0 for r in chosen)
    )
    again = run_tpe_hyperband(household, SimulatedMeter(power_w=100.0), seed=3)
    sampled = [(t, r[0].batch_size, r[0].lr) for t, r in sorted(trials.items())]
    assert sampled == [(t, r[0].batch_size, r[0].lr) for t, r in sorted(_per_trial(again).items())]


def test_grid_trains_every_batch_size_through_the_schedule(household: Scenario) -> None:
    run = run_grid(household, SimulatedMeter(power_w=100.0))
    last_step = len(household.budget.schedule.phases) - 1
    reached = {t["batch_size"]: t["last_step"] for t in run.trials_run}
    assert set(reached) == set(household.budget.batch_sizes)
    assert all(step == last_step for step in reached.values()), (reached, run.notes)
    finals = {r.trial: r.value for r in run.steps if r.step == last_step}
    assert run.final_metric == max(finals.values())
    assert run.chosen_trial is not None and finals[run.chosen_trial] == run.final_metric
    assert run.chosen_epochs == household.budget.schedule.train_epochs_total
    assert run.search_overhead is not None and run.search_overhead > 2  # two configurations


def test_vanilla_overhead_is_its_evaluations(household: Scenario) -> None:
    run = run_vanilla(household, SimulatedMeter(power_w=100.0))
    training = math.fsum(r.energy_per_epoch_j or 0.0 for r in run.steps)
    assert run.chosen_training_j == pytest.approx(training)
    assert run.search_overhead == pytest.approx(run.total_energy_j / training)
    assert run.search_overhead is not None and run.search_overhead > 1


def _arm(name: str, seed: int, energy: float, metric: float, **kwargs: object) -> ArmResult:
    steps = (StepRecord(0, 32, 0, "train", metric, energy / 2, 0.1),)
    return ArmResult(
        arm=name,
        seed=seed,
        total_energy_j=energy,
        final_metric=metric,
        best_params={"batch_size": 32},
        n_trials=1,
        wall_s=1.0,
        energy_source="simulated",
        chosen_trial=0,
        steps=steps,
        **kwargs,  # type: ignore[arg-type]
    )


def _scenario(direction: str, **arms: list[tuple[float, float]]) -> ScenarioResult:
    return ScenarioResult(
        scenario="s",
        description="d",
        metric_name="m",
        direction=direction,
        arms={
            name: ArmRuns(name, tuple(_arm(name, seed, e, m) for seed, (e, m) in enumerate(runs)))
            for name, runs in arms.items()
        },
    )


def test_spread_says_whether_ranges_are_separated() -> None:
    assert Spread((1.0, 2.0)).separated_from(Spread((3.0, 4.0))) is True
    assert Spread((3.0, 4.0)).separated_from(Spread((1.0, 2.0))) is True
    assert Spread((1.0, 3.0)).separated_from(Spread((2.0, 4.0))) is False
    assert Spread((1.0,)).separated_from(Spread((3.0, 4.0))) is None  # one seed: unknown
    assert Spread((1.0, math.nan)).separated_from(Spread((3.0, 4.0))) is None
    spread = Spread((1.0, 2.0, 6.0))
    assert (spread.mean, spread.low, spread.high) == (3.0, 1.0, 6.0)
    assert Spread((1.0, math.nan)).to_json() == {
        "mean": None,
        "min": None,
        "max": None,
        "per_seed": [1.0, None],
    }


def test_comparisons_targets_and_means_over_seeds() -> None:
    result = _scenario(
        "minimize",
        alpha1=[(100.0, 10.0), (110.0, 10.4)],
        sm2=[(80.0, 10.1), (90.0, 10.3)],
        tpe_hyperband=[(85.0, 9.0), (95.0, 9.2)],
        grid=[(300.0, 10.0), (310.0, 10.0)],
    )
    assert result.best_arm == "tpe_hyperband"  # lowest mean perplexity
    reduction = result.reduction
    assert reduction is not None
    assert reduction.values == pytest.approx((0.2, 1 - 90 / 110))
    assert result.parity is None  # no vanilla run
    tpe = result.compare("tpe_hyperband")
    assert tpe is not None
    assert tpe.energy_ratio == pytest.approx(85.0 / 90.0)
    assert tpe.energy_beyond_spread is False  # 80..90 overlaps 85..95
    assert tpe.metric_gap == pytest.approx((10.2 - 9.1) / 9.1)
    assert tpe.metric_beyond_spread is True
    grid = result.compare("grid")
    assert grid is not None and grid.energy_beyond_spread is True
    assert result.targets == {
        "less_energy_than_tpe_hyperband": True,
        "less_energy_than_grid": True,
        "less_energy_than_zeus_cost": None,  # not run
        "metric_within_2pct_of_best_arm": False,  # 12% worse than TPE
        "metric_within_2pct_of_alpha1": True,  # 10.2 against 10.2
    }
    data = result.to_json()
    assert data["sm2"]["total_energy_j"] == 85.0
    assert data["sm2"]["final_metric"] == pytest.approx(10.2)
    assert [r["seed"] for r in data["sm2"]["per_seed"]] == [0, 1]
    assert data["sm2"]["spread"]["total_energy_j"]["min"] == 80.0
    assert data["comparisons"]["tpe_hyperband"]["energy_beyond_spread"] is False
    assert data["reduction"] == pytest.approx(reduction.mean)
    json.dumps(data, allow_nan=False)


def test_targets_of_arms_not_run_are_unknown() -> None:
    result = _scenario("maximize", sm2=[(1.0, 0.9)], vanilla=[(0.5, 0.95)])
    assert result.best_arm == "vanilla"
    assert result.targets == {
        "less_energy_than_tpe_hyperband": None,
        "less_energy_than_grid": None,
        "less_energy_than_zeus_cost": None,
        "metric_within_2pct_of_best_arm": False,
        "metric_within_2pct_of_alpha1": None,
    }
    comparison = result.compare("vanilla")
    assert comparison is not None and comparison.energy_beyond_spread is None  # one seed
    assert result.compare("grid") is None and result.reduction is None


def test_overhead_unknown_when_an_epoch_was_not_measured() -> None:
    steps = (
        StepRecord(0, 32, 0, "train", 0.5, 10.0, 0.1),
        StepRecord(0, 32, 1, "train", 0.6, None, 0.1),
    )
    run = _arm("vanilla", 0, 30.0, 0.6)
    unmeasured = dataclasses.replace(run, steps=steps)
    assert unmeasured.chosen_training_j is None and unmeasured.search_overhead is None
    assert unmeasured.to_json()["search_overhead"] is None
    assert ArmRuns("vanilla", (unmeasured,)).to_json()["search_overhead"] is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seeds": 0}, "`seeds` must be an integer >= 1, got 0"),
        ({"seeds": True}, "`seeds` must be an integer >= 1, got True"),
        ({"arms": ("sm2", "tpe")}, "`arms` must be a non-empty selection of vanilla, alpha1"),
        ({"arms": ()}, "`arms` must be a non-empty selection"),
        ({"arms": ("sm2", "sm2")}, "each at most once"),
        ({"seed": -1}, "`seed` must be an integer >= 0, got -1"),
    ],
)
def test_run_bench_refuses_bad_input_before_writing(
    options: dict[str, object], message: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_bench(["household"], "tiny", out, meter=SimulatedMeter(), **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        run_bench(["household"], "huge", out, meter=SimulatedMeter())
    assert not out.exists()


def test_cli_bench_runs_the_arms_given_with_each_seed(tmp_path: Path) -> None:
    argv = ["bench", "--scenario", "household", "--budget", "tiny", "--out", str(tmp_path)]
    code, out, err = run_cli([*argv, "--seeds", "2", "--arms", "sm2,vanilla"])
    assert code == 0, err
    entry = json.loads((tmp_path / "results.json").read_text())["household"]
    assert entry["meta"]["seeds"] == [0, 1] and entry["meta"]["arms"] == ["sm2", "vanilla"]
    assert not {"alpha1", "tpe_hyperband", "grid"} & set(entry)
    for arm in ("sm2", "vanilla"):
        runs = entry[arm]["per_seed"]
        assert [r["seed"] for r in runs] == [0, 1]
        assert entry[arm]["total_energy_j"] == pytest.approx(
            (runs[0]["total_energy_j"] + runs[1]["total_energy_j"]) / 2
        )
        assert entry[arm]["final_metric"] == pytest.approx(
            (runs[0]["final_metric"] + runs[1]["final_metric"]) / 2
        )
    assert entry["comparisons"]["vanilla"]["energy_beyond_spread"] in (True, False)
    assert entry["reduction"] is None  # α=1 was not run
    assert "Seeds: 0, 1 (2)" in out and "| household (r2, max) | SM² α=0.75 |" in out
    assert (tmp_path / "household.png").exists() and (tmp_path / "arms.png").exists()


def test_cli_refuses_seeds_zero_and_unknown_arms(tmp_path: Path) -> None:
    argv = ["bench", "--budget", "tiny", "--out", str(tmp_path / "out")]
    assert_refused(*run_cli([*argv, "--seeds", "0"]), "bench", "--seeds must be >= 1")
    assert_refused(*run_cli([*argv, "--arms", "optuna"]), "bench", "unknown: 'optuna'")
    assert not (tmp_path / "out").exists()


def test_an_unmeasured_energy_is_null_and_decides_no_target() -> None:
    result = _scenario(
        "maximize", sm2=[(math.nan, 0.9)], tpe_hyperband=[(2.0, 0.9)], grid=[(4.0, 0.9)]
    )
    (run,) = result.arms["sm2"].runs
    assert run.search_overhead is None
    assert run.to_json()["total_energy_j"] is None
    assert result.targets["less_energy_than_tpe_hyperband"] is None
    assert result.targets["metric_within_2pct_of_best_arm"] is True
    data = result.to_json()
    assert data["sm2"]["total_energy_j"] is None
    assert data["comparisons"]["grid"]["energy_ratio"] is None
    json.dumps(data, allow_nan=False)
