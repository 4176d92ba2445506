"""The grid tables and the replay of pruning rules on them (the ``tiny`` budget; seconds each),
the resumable bench, the Zeus arm, and the replay of the committed CPU tables."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import pytest

from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.scenarios import Budget, Scenario, load_scenario
from optuna_sm2.scenarios._arms import (
    OutOfTime,
    grid_result,
    new_table,
    run_grid,
    run_sm2,
    run_zeus_cost,
    zeus_cost,
)
from optuna_sm2.scenarios._bench import run_bench, zeus_target
from optuna_sm2.scenarios._replay import ALPHA1, RULES, Rule, replay
from optuna_sm2.scenarios._results import ScenarioResult
from optuna_sm2.scenarios._store import BenchStore
from optuna_sm2.scenarios._table import GridTable, TableConfiguration, load_tables
from tests.support.cli import assert_refused, run_cli
from tests.support.meters import PlaybackMeter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TABLES = Path(__file__).resolve().parents[2] / "benchmarks" / "tables"


@pytest.fixture(scope="module")
def household() -> Scenario:
    """Household at ``tiny`` with four batch sizes: two rungs, so that rules can differ."""
    scenario = load_scenario("household", "tiny")
    budget = Budget(
        "tiny", (16, 32, 64, 128), n_lrs=5, epochs_per_rung=1, final_epochs=1, patience=1
    )
    return dataclasses.replace(scenario, budget=budget)


@pytest.fixture(scope="module")
def table(household: Scenario) -> GridTable:
    meter = SimulatedMeter(power_w=100.0)
    start = new_table(household, meter, seed=2, resolution=None, meta={})
    saved: list[GridTable] = []
    run_grid(household, meter, seed=2, table=start, save=saved.append)
    assert [len(t.configurations) for t in saved] == [1, 2, 3, 4]  # stored as each finishes
    return saved[-1]


def _decisions(run: object) -> list[tuple[int, int]]:
    return [(t["batch_size"], t["last_step"]) for t in run.trials_run]  # type: ignore[attr-defined]


def test_the_table_holds_every_step_and_window(household: Scenario, table: GridTable) -> None:
    phases = household.budget.schedule.phases
    assert table.complete and table.phases == tuple(p.kind for p in phases)
    assert table.rung_steps == tuple(household.budget.schedule.rung_steps)
    assert table.energy_source == "simulated" and not table.energy_is_estimate
    for k, c in enumerate(table.configurations):
        assert (c.trial, c.batch_size) == (k, household.budget.batch_sizes[k])
        assert [s.step for s in c.steps] == list(range(len(phases)))
        assert all(s.work_j and s.work_j > 0 and s.eval_j and s.eval_j > 0 for s in c.steps)
    again = GridTable.from_json(json.loads(json.dumps(table.to_json())))
    assert again == table
    grid = grid_result(table)
    assert grid.total_energy_j == pytest.approx(
        math.fsum(s.work_j + s.eval_j for c in table.configurations for s in c.steps)  # type: ignore[operator]
    )


def test_replay_at_alpha1_decides_as_the_live_alpha1_arm(
    household: Scenario, table: GridTable
) -> None:
    live = run_sm2(
        household, SimulatedMeter(power_w=100.0), arm="alpha1", alpha=1.0, beta=0.5, seed=2
    )
    replayed = replay(table, ALPHA1)
    assert list(replayed.decisions) == _decisions(live)
    assert replayed.final_metric == live.final_metric
    assert replayed.chosen_batch_size == live.best_params["batch_size"]
    # Pruned at the first rung, two of the four trained one block only: the replay spent less.
    assert sorted(last for _, last in replayed.decisions) == [1, 1, 3, 5]
    assert replayed.energy_j < grid_result(table).total_energy_j


def _windows(table: GridTable, decisions: list[tuple[int, int]]) -> list[float]:
    """The table's window joules in the order a synchronous run with ``decisions`` opens them:
    rung by rung, every configuration still running in trial order, its work then its
    evaluation at each step."""
    last = dict(decisions)
    order: list[float] = []
    done = {c.batch_size: -1 for c in table.configurations}
    for until in (*table.rung_steps, table.last_step):
        for c in table.configurations:
            for s in c.steps:
                if done[c.batch_size] < s.step <= min(until, last[c.batch_size]):
                    order += [s.work_j, s.eval_j]  # type: ignore[list-item]
                    done[c.batch_size] = s.step
    return order


@pytest.mark.parametrize(
    "rule", [Rule("α=0.75", alpha=0.75), Rule("α=0.5 β=0", alpha=0.5, beta=0.0)]
)
def test_a_live_sm2_arm_on_the_tables_energies_decides_as_its_replay(
    household: Scenario, table: GridTable, rule: Rule
) -> None:
    replayed = replay(table, rule)
    meter = PlaybackMeter(_windows(table, list(replayed.decisions)))
    live = run_sm2(household, meter, arm="sm2", alpha=rule.alpha, beta=rule.beta, seed=2)
    assert meter.reads == 2 * len(meter.joules)  # every window played, no other read
    assert _decisions(live) == list(replayed.decisions)
    assert live.final_metric == replayed.final_metric
    assert live.total_energy_j == pytest.approx(replayed.energy_j)


def test_energy_decides_the_replay_and_identical_decisions_cost_alike(table: GridTable) -> None:
    # Make the winner's epochs cost ten times more: ranked by energy alone (alpha=0, beta=1, the
    # paper's plain Eq. 2, where no performance margin protects it) it is pruned at the first
    # rung; alpha=1 does not see it.
    def costly(c: object) -> object:
        steps = tuple(
            dataclasses.replace(s, energy_per_epoch_j=(s.energy_per_epoch_j or 0) * 10)
            for s in c.steps  # type: ignore[attr-defined]
        )
        return dataclasses.replace(c, steps=steps)  # type: ignore[type-var]

    winner = replay(table, ALPHA1).chosen_batch_size
    changed = dataclasses.replace(
        table,
        configurations=tuple(
            costly(c) if c.batch_size == winner else c  # type: ignore[misc]
            for c in table.configurations
        ),
    )
    assert replay(changed, ALPHA1).decisions == replay(table, ALPHA1).decisions
    energy_only = replay(changed, Rule("energy", alpha=0.0, beta=1.0, ranking="paper"))
    assert dict(energy_only.decisions)[winner] == table.rung_steps[0]
    for rule in RULES:
        a, b = replay(table, rule), replay(table, rule)
        assert (a.energy_j, a.decisions) == (b.energy_j, b.decisions)


def test_optuna_sha_prunes_trials_one_after_another(table: GridTable) -> None:
    sha = replay(table, Rule("Optuna SHA", kind="optuna_sha"))
    first = sha.decisions[0]
    assert first == (table.batch_sizes[0], table.last_step)  # alone, never pruned
    assert sha.energy_j <= grid_result(table).total_energy_j


def test_grid_stops_between_configurations_and_resumes(
    household: Scenario, table: GridTable
) -> None:
    meter = SimulatedMeter(power_w=100.0)
    start = new_table(household, meter, seed=2, resolution=None, meta={})
    with pytest.raises(OutOfTime):
        run_grid(household, meter, seed=2, table=start, deadline=time.monotonic() - 1.0)
    saved: list[GridTable] = []

    def stop_after_one(t: GridTable) -> None:
        saved.append(t)
        raise OutOfTime("stopped")

    with pytest.raises(OutOfTime):
        run_grid(household, meter, seed=2, table=start, save=stop_after_one)
    (partial,) = saved
    said: list[str] = []
    resumed = run_grid(household, meter, seed=2, table=partial, progress=said.append)
    assert said and not any(m.startswith("configuration 0:") for m in said)
    assert resumed.steps[0] == grid_result(partial).steps[0]
    values = [(r.batch_size, r.step, r.value) for r in resumed.steps]
    assert values == [(r.batch_size, r.step, r.value) for r in grid_result(table).steps]


def test_zeus_cost_is_zeus_formula() -> None:
    assert zeus_cost(100.0, 2.0, 30.0)[0] == pytest.approx(0.5 * 100.0 + 0.5 * 30.0 * 2.0)


def test_zeus_arm_stops_at_the_target_and_chooses_the_cheapest(
    household: Scenario, table: GridTable
) -> None:
    meter = SimulatedMeter(power_w=100.0)
    easy = run_zeus_cost(household, meter, target=-1e9, seed=2)
    # Every job reaches a target any model meets after its first epoch: one epoch each.
    assert {t["last_step"] for t in easy.trials_run} == {0}
    assert easy.n_trials == len(household.budget.batch_sizes)
    assert [t["batch_size"] for t in easy.trials_run] == [32, 16, 64, 128]  # Zeus's order
    first = easy.trials_run[0]["batch_size"]
    assert first == household.budget.default_batch_size
    assert (
        easy.chosen_trial is not None
        and easy.best_params["batch_size"] in household.budget.batch_sizes
    )
    hard = run_zeus_cost(household, meter, target=2.0, seed=2)  # R² never reaches 2
    # The default (32) fails, which ends the downward direction; upward, 64 fails and ends it.
    assert [t["batch_size"] for t in hard.trials_run] == [32, 64]
    assert any("no batch size reached the target" in n for n in hard.notes)
    assert math.isfinite(hard.final_metric)
    target = zeus_target(table)
    assert target == pytest.approx(grid_result(table).final_metric * 0.98)


def test_bench_stores_each_run_and_skips_it_when_run_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    said: list[str] = []

    def bench() -> dict[str, ScenarioResult]:
        return run_bench(
            ["household"],
            "tiny",
            out,
            meter=SimulatedMeter(),
            arms=("grid", "zeus_cost"),
            progress=said.append,
        )

    first = bench()
    store = BenchStore(out, "tiny")
    assert store.run("household", "grid", 0) is not None
    assert store.run("household", "zeus_cost", 0) is not None
    table = store.table("household", 0)
    assert table is not None and table.complete and table.resolution is not None
    said.clear()
    again = bench()
    assert sum("stored: skipped" in m for m in said) == 2
    assert not any("configuration" in m for m in said)
    assert again["household"].to_json() == first["household"].to_json()
    entry = json.loads((out / "results.json").read_text())["household"]
    assert "zeus_cost" in entry and "grid" in entry
    with pytest.raises(ValueError, match="holds a bench at budget 'tiny', not 'small'"):
        run_bench(["household"], "small", out, meter=SimulatedMeter(), arms=("grid",))


def test_bench_with_no_time_left_writes_what_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # The meter's resolution is polled for 0.3 s before any run: 0.001 minutes have passed.
    results = run_bench(
        ["household"], "tiny", out, meter=SimulatedMeter(), arms=("grid",), max_minutes=0.001
    )
    assert results == {} and not (out / "tables").exists()
    assert not (out / "results.json").exists()


def test_zeus_needs_the_grid(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="zeus_cost takes its target metric from the grid"):
        run_bench(
            ["household"], "tiny", tmp_path / "o", meter=SimulatedMeter(), arms=("zeus_cost",)
        )
    assert not (tmp_path / "o").exists()


def test_cli_replay_and_its_bad_input(tmp_path: Path, table: GridTable) -> None:
    store = BenchStore(tmp_path / "bench", "tiny")
    store.save_table(table)
    code, out, err = run_cli(
        ["bench", "--replay", str(tmp_path / "bench"), "--out", str(tmp_path / "r")]
    )
    assert code == 0, err
    assert "| household | α=0.75 |" in out and "| household | Optuna SHA |" in out
    data = json.loads((tmp_path / "r" / "replay.json").read_text())
    assert [r["rule"]["name"] for r in data["rules"]] == [r.name for r in RULES]
    assert len(data["curve"]) >= 20 and (tmp_path / "r" / "replay.png").exists()
    argv = ["bench", "--budget", "tiny"]
    assert_refused(
        *run_cli([*argv, "--replay", str(tmp_path / "none")]), "bench", "is not a folder"
    )
    assert_refused(
        *run_cli([*argv, "--out", str(tmp_path / "x"), "--max-minutes", "0"]),
        "bench",
        "--max-minutes",
    )
    assert_refused(
        *run_cli([*argv, "--out", str(tmp_path / "x"), "--arms", "zeus"]),
        "bench",
        "unknown: 'zeus'",
    )
    assert_refused(*run_cli(argv), "bench", "required: --out (unless --replay)")
    assert_refused(
        *run_cli(["bench", "--replay", str(tmp_path / "r")]), "bench", "no complete grid table"
    )
    assert not (tmp_path / "x").exists()


def test_replay_of_the_committed_cpu_tables() -> None:
    tables = load_tables(TABLES)
    assert tables, f"no grid table under {TABLES}"
    for table in tables:
        assert table.budget == "small" and table.energy_source == "cpu-time-estimate"
        assert table.energy_is_estimate and table.resolution is not None
        grid = grid_result(table)
        for rule in RULES:
            replayed = replay(table, rule)
            assert replayed.energy_j <= grid.total_energy_j
            assert math.isfinite(replayed.final_metric)


def test_a_diverged_epoch_costs_only_the_rules_that_trained_into_it(table: GridTable) -> None:
    decided = dict(replay(table, ALPHA1).decisions)
    winner = replay(table, ALPHA1).chosen_batch_size
    loser = next(b for b, last in decided.items() if last == table.rung_steps[0])

    def diverged(c: TableConfiguration, after: int) -> TableConfiguration:
        kept = tuple(s for s in c.steps if s.step <= after)
        return dataclasses.replace(c, steps=kept, notes=("pruned",), tail_j=5.0)

    cut = {winner: table.rung_steps[1], loser: table.rung_steps[0]}
    changed = dataclasses.replace(
        table,
        configurations=tuple(
            diverged(c, cut[c.batch_size]) if c.batch_size in cut else c
            for c in table.configurations
        ),
    )
    again = replay(changed, ALPHA1)
    steps_j = math.fsum(
        c.joules_to(dict(again.decisions)[c.batch_size], tail=False)[0]
        for c in changed.configurations
    )
    # The winner was trained on into its diverged epoch (5 J); the loser, pruned at the rung
    # it diverged after, never was.
    assert dict(again.decisions)[winner] == table.rung_steps[1]
    assert dict(again.decisions)[loser] == table.rung_steps[0]
    assert again.energy_j == pytest.approx(steps_j + 5.0)
    assert grid_result(changed).total_energy_j == pytest.approx(
        math.fsum(c.joules_to(table.last_step, tail=True)[0] for c in changed.configurations)
    )
    assert any("pruned at step" in note for note in grid_result(changed).notes)
