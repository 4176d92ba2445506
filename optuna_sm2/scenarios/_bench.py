"""``run_bench``: the paper's Table 1 and Fig. 2 on the scenarios, against what Optuna users run
instead, over several seeds, written to a folder."""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import torch

from optuna_sm2 import _validation as _check
from optuna_sm2.energy import (
    EnergyMeter,
    EnergyReadError,
    Resolution,
    auto_meter,
    poll_resolution,
)
from optuna_sm2.scenarios._arms import (
    ArmRunner,
    OutOfTime,
    grid_result,
    new_table,
    run_grid,
    run_sm2,
    run_tpe_hyperband,
    run_vanilla,
    run_zeus_cost,
)
from optuna_sm2.scenarios._base import Scenario
from optuna_sm2.scenarios._figure import plot_arms, plot_run
from optuna_sm2.scenarios._registry import load_scenario
from optuna_sm2.scenarios._results import (
    ARM_LABELS,
    ARMS,
    J_PER_WH,
    METRIC_TOLERANCE,
    ArmResult,
    ArmRuns,
    ScenarioResult,
    Spread,
)
from optuna_sm2.scenarios._store import BenchStore
from optuna_sm2.scenarios._table import GridTable

ALPHA1 = (1.0, 0.5)
SM2 = (0.75, 0.5)
"""(alpha, beta) of the two SM² arms: Optuna's successive halving, and the paper's default."""

RUNNERS: dict[str, ArmRunner] = {
    "vanilla": run_vanilla,
    "alpha1": functools.partial(run_sm2, arm="alpha1", alpha=ALPHA1[0], beta=ALPHA1[1]),
    "sm2": functools.partial(run_sm2, arm="sm2", alpha=SM2[0], beta=SM2[1]),
    "tpe_hyperband": run_tpe_hyperband,
}
"""The runner of each arm of :data:`ARMS` but the grid and Zeus (see ``_run_arm``)."""

RESOLUTION_POLL_S = 0.3
"""Seconds the bench polls its meter for the resolution it records with the grid tables."""


def check_arms(arms: object) -> tuple[str, ...]:
    """``arms`` as a tuple of names from :data:`ARMS`, in the order given.

    Raises:
        ValueError: not a sequence of known names, empty, or a name repeats.
    """
    names = (arms,) if isinstance(arms, str) else arms
    if (
        not isinstance(names, Sequence)
        or not names
        or any(name not in ARMS for name in names)
        or len(set(names)) != len(names)
    ):
        raise ValueError(
            f"`arms` must be a non-empty selection of {', '.join(ARMS)}, each at most once; "
            f"got {arms!r}."
        )
    return tuple(names)


def run_bench(
    names: Sequence[str],
    budget: str,
    out_dir: str | Path,
    *,
    meter: EnergyMeter | None = None,
    seed: int = 0,
    seeds: int = 1,
    arms: Sequence[str] = ARMS,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    max_minutes: float | None = None,
) -> dict[str, ScenarioResult]:
    """Run the ``arms`` on each scenario with the seeds ``seed .. seed + seeds - 1``, in this
    process, one after another, with the same ``meter`` (``auto_meter()`` when ``None``).

    The arms (:data:`ARMS`): ``vanilla``, one ordinary training run of the middle batch size at
    the scenario's conventional LR with early stopping; ``alpha1``, SM² with α=1 (Optuna's
    successive halving with SM²'s exploration); ``sm2``, SM² with α=0.75, β=0.5;
    ``tpe_hyperband``, TPE over batch size and a log-uniform LR with Hyperband pruning and plain
    training; ``grid``, every batch size through the whole SM² schedule without pruning, its
    :class:`GridTable` stored for the replay; ``zeus_cost``, Zeus's batch-size optimizer with
    the target the grid's best final metric of the same seed relaxed by
    :data:`METRIC_TOLERANCE` (so it runs after the grid on each seed). See ``_arms``. For each
    scenario and seed the vanilla split of the data is the seed's.

    **Resumable.** ``out_dir`` (a :class:`BenchStore`) keeps each arm and seed as it finishes,
    and the grid's table after every configuration; running the same bench again skips what is
    stored and continues the grid table where it stopped. With ``max_minutes``, no arm-seed run
    and no grid configuration starts after that many minutes: the bench stops between them.

    Writes ``results.json``, ``results.md``, one ``<scenario>.png`` per scenario (the first
    seed's ``sm2`` study, Fig. 2 style, or the first SM² arm run) and ``arms.png`` (energy
    against final metric, every arm and seed) into ``out_dir`` (created) from every stored run
    of the chosen arms and seeds, rewritten after every seed of every scenario.

    Raises:
        ValueError: unknown scenario, budget or arm, ``seeds`` not an integer >= 1,
            ``max_minutes`` not a number > 0, ``out_dir`` holding another budget, or
            ``zeus_cost`` without the grid arm or its stored tables (before anything is
            written).
        ScenarioDataMissing: a scenario's data package is not installed (checked for every
            scenario before anything runs).
    """
    n_seeds = _check.check_int("seeds", seeds, minimum=1)
    first_seed = _check.check_int("seed", seed, minimum=0)
    if max_minutes is not None:
        _check.check_real("max_minutes", max_minutes, low=0.0, low_inclusive=False)
    chosen = check_arms(arms)
    say = progress or (lambda message: None)
    loaded = [load_scenario(name, budget, seed=first_seed) for name in names]
    store = BenchStore(out_dir, budget)
    seed_list = list(range(first_seed, first_seed + n_seeds))
    _check_zeus(chosen, store, [s.name for s in loaded], seed_list)
    deadline = None if max_minutes is None else time.monotonic() + 60.0 * max_minutes
    out = Path(out_dir)
    store.open()
    meter = meter if meter is not None else auto_meter()
    resolution = _resolution(meter)
    meta = {
        "budget": budget,
        "seed": first_seed,
        "seeds": seed_list,
        "arms": list(chosen),
        "device": device,
        "energy_source": meter.source,
        "energy_is_estimate": meter.is_estimate,
        "energy_resolution": None if resolution is None else resolution._asdict(),
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {_cpu_count()} CPU cores",
    }
    order = [a for a in chosen if a != "zeus_cost"] + [a for a in chosen if a == "zeus_cost"]
    results: dict[str, ScenarioResult] = {}
    stopped = False
    for first in loaded:
        schedule = first.budget.schedule
        started = time.perf_counter()
        say(
            f"[{first.name}] {first.description}: {first.data_source}; "
            f"batch sizes {list(first.budget.batch_sizes)}, rungs at "
            f"{schedule.rung_steps}, energy source {meter.source}, seeds {seed_list}, "
            f"arms {', '.join(chosen)}"
        )
        runs: dict[str, list[ArmResult]] = {arm: [] for arm in chosen}
        for s in seed_list:
            scenario: Scenario | None = first if s == first_seed else None
            for arm in order:
                stored = store.run(first.name, arm, s)
                if stored is not None:
                    say(f"[{first.name} {ARM_LABELS[arm]} seed {s}] stored: skipped")
                    runs[arm].append(stored)
                    continue
                stopped = stopped or (deadline is not None and time.monotonic() >= deadline)
                if stopped:
                    continue
                if scenario is None:
                    scenario = load_scenario(first.name, budget, seed=s)
                tell = _teller(say, f"[{scenario.name} {ARM_LABELS[arm]} seed {s}]")
                try:
                    result = _run_arm(
                        arm, scenario, meter, store, s, device, tell, deadline, resolution, meta
                    )
                except OutOfTime as exc:
                    say(f"--max-minutes reached: stopped between trials ({exc})")
                    stopped = True
                    continue
                store.save_run(first.name, result)
                runs[arm].append(result)
            done = {arm: r for arm, r in runs.items() if r}
            if done:
                results[first.name] = _scenario_result(first, done)
                write_results(results, meta, out)
        if first.name not in results:
            continue
        measured = results[first.name]
        figure_arm = next((a for a in ("sm2", "alpha1", "grid") if a in measured.arms), None)
        if figure_arm is not None:
            plot_run(measured, schedule.phases, out / f"{first.name}.png", arm=figure_arm)
        plot_arms(results, out / "arms.png")
        say(f"[{first.name}] done in {time.perf_counter() - started:.0f} s")
    if stopped:
        say("stopped by --max-minutes: run the same command again to go on")
    return results


def _resolution(meter: EnergyMeter) -> Resolution | None:
    """How the meter's reading advances (polled for :data:`RESOLUTION_POLL_S`); ``None`` when it
    advanced fewer than three times or failed."""
    try:
        return poll_resolution(meter.read, RESOLUTION_POLL_S)
    except EnergyReadError:
        return None


def _check_zeus(
    chosen: tuple[str, ...], store: BenchStore, scenarios: list[str], seeds: list[int]
) -> None:
    """``zeus_cost`` takes its target from the grid's table of the same seed: the grid must run
    too, or its complete table be stored."""
    if "zeus_cost" not in chosen or "grid" in chosen:
        return
    missing = [
        f"{name} seed {s}"
        for name in scenarios
        for s in seeds
        if (table := store.table(name, s)) is None or not table.complete
    ]
    if missing:
        raise ValueError(
            "`arms`: zeus_cost takes its target metric from the grid arm's table of the same "
            f"seed; add grid to the arms (no complete table stored for {', '.join(missing)})."
        )


def zeus_target(table: GridTable) -> float:
    """Zeus's target metric on a seed: the grid's best final metric, relaxed by
    :data:`METRIC_TOLERANCE` of its magnitude in the worse direction."""
    best = grid_result(table).final_metric
    slack = METRIC_TOLERANCE * abs(best)
    return best - slack if table.direction == "maximize" else best + slack


def _run_arm(
    arm: str,
    scenario: Scenario,
    meter: EnergyMeter,
    store: BenchStore,
    seed: int,
    device: str,
    tell: Callable[[str], None],
    deadline: float | None,
    resolution: Resolution | None,
    meta: dict[str, Any],
) -> ArmResult:
    """One arm on one seed; the grid resumes and stores its table, Zeus reads its target."""
    if arm == "grid":
        return run_grid(
            scenario,
            meter,
            seed=seed,
            device=device,
            progress=tell,
            table=store.table(scenario.name, seed)
            or new_table(scenario, meter, seed=seed, resolution=resolution, meta=meta),
            save=store.save_table,
            deadline=deadline,
        )
    if arm == "zeus_cost":
        table = store.table(scenario.name, seed)
        assert table is not None and table.complete  # the grid ran first (_check_zeus)
        return run_zeus_cost(
            scenario, meter, target=zeus_target(table), seed=seed, device=device, progress=tell
        )
    return RUNNERS[arm](scenario, meter, seed=seed, device=device, progress=tell)


def _teller(say: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: say(f"{prefix} {message}")


def _scenario_result(scenario: Scenario, runs: dict[str, list[ArmResult]]) -> ScenarioResult:
    budget = scenario.budget
    return ScenarioResult(
        scenario=scenario.name,
        description=scenario.description,
        metric_name=scenario.metric_name,
        direction=scenario.direction,
        arms={arm: ArmRuns(arm, tuple(results)) for arm, results in runs.items()},
        settings={
            "batch_sizes": list(budget.batch_sizes),
            "n_lrs": budget.n_lrs,
            "lr_min": budget.lr_min,
            "lr_max": budget.lr_max,
            "explore_fraction": budget.explore_fraction,
            "epochs_per_rung": budget.epochs_per_rung,
            "final_epochs": budget.final_epochs,
            "train_epochs_total": budget.schedule.train_epochs_total,
            "vanilla_patience": budget.patience,
            "conventional_lr": scenario.conventional_lr,
            "tpe_hyperband_trials": 2 * len(budget.batch_sizes),
            "data": scenario.data_source,
        },
    )


def write_results(
    results: dict[str, ScenarioResult], meta: dict[str, Any], out_dir: str | Path
) -> None:
    """``results.json`` (one entry per scenario, each with the run's ``meta``: machine, energy
    source, date, budget, seeds, arms) and ``results.md`` in ``out_dir``."""
    out = Path(out_dir)
    payload = {name: {**r.to_json(), "meta": meta} for name, r in results.items()}
    (out / "results.json").write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    (out / "results.md").write_text(format_table(results, meta))


def _number(x: float, digits: str) -> str:
    return format(x, digits) if math.isfinite(x) else "n/a"


def _spread(spread: Spread, show: Callable[[float], str]) -> str:
    """``mean (low–high)``, or the mean alone for one seed; ``n/a`` when not measured."""
    if not math.isfinite(spread.mean):
        return "n/a"
    if len(spread.values) < 2:
        return show(spread.mean)
    return f"{show(spread.mean)} ({show(spread.low)}–{show(spread.high)})"


def _energy_wh(joules: float) -> str:
    return f"{joules / J_PER_WH:.4f}"


def _metric(x: float) -> str:
    return f"{x:.4f}"


def _times(x: float) -> str:
    return f"x{x:.2f}"


def _percent(x: float) -> str:
    return f"{100 * x:+.2f}%" if math.isfinite(x) else "n/a"


def _beyond(flag: bool | None) -> str:
    return "one seed" if flag is None else ("yes" if flag else "no")


def _met(flag: bool | None) -> str:
    return "n/a" if flag is None else ("met" if flag else "**missed**")


def format_table(results: dict[str, ScenarioResult], meta: dict[str, Any]) -> str:
    """Markdown: each arm's energy, metric and search overhead (mean and range over seeds),
    α=0.75 against each arm, its saving over α=1, the targets, and the decisions."""
    estimate = " (an estimate, not a measurement)" if meta.get("energy_is_estimate") else ""
    seeds = sorted({run.seed for r in results.values() for a in r.arms.values() for run in a.runs})
    requested = meta.get("seeds") or seeds
    pending = f", of {len(requested)} requested" if len(seeds) < len(requested) else ""
    lines = [
        f"# SM² benchmark, budget `{meta.get('budget')}`",
        "",
        f"Energy source: `{meta.get('energy_source')}`{estimate}. Machine: {meta.get('machine')}, "
        f"Python {meta.get('python')}, torch {meta.get('torch')} "
        f"({meta.get('torch_threads')} threads), device {meta.get('device')}. "
        f"Date: {meta.get('date')}. Seeds: {', '.join(map(str, seeds))} ({len(seeds)}{pending}).",
        "",
        "## Every arm",
        "",
        "Mean over the seeds, and (lowest–highest) when there are several. Search overhead: the "
        "arm's energy divided by that of its chosen configuration's thorough epochs, as measured "
        "in the same run (training it alone for the same epochs).",
        "",
        "| Scenario | Arm | Energy (Wh) | Final metric | Search overhead | "
        "Chosen configuration per seed | Trials | Wall s |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in results.values():
        for name, runs in r.arms.items():
            chosen = "; ".join(_params(run.best_params) for run in runs.runs)
            trials = "+".join(str(run.n_trials) for run in runs.runs)
            wall = "+".join(f"{run.wall_s:.0f}" for run in runs.runs)
            lines.append(
                f"| {r.scenario} ({r.metric_name}, {r.direction[:3]}) | {ARM_LABELS[name]} | "
                f"{_spread(runs.energy_j, _energy_wh)} | {_spread(runs.metric, _metric)} | "
                f"{_spread(runs.overhead, _times)} | {chosen} | {trials} | {wall} |"
            )
    lines += [
        "",
        "## SM² α=0.75 against each arm",
        "",
        "Energy ratio: E(α=0.75) / E(arm) of the means. Metric gap: relative to the arm's mean, "
        "positive when α=0.75 ends worse. Beyond spread: whether the two arms' seed ranges do "
        "not overlap.",
        "",
        "| Scenario | Against | Energy ratio | Beyond spread | Metric gap | Beyond spread |",
        "|---|---|---:|---|---:|---|",
    ]
    for r in results.values():
        for other, c in r.comparisons.items():
            lines.append(
                f"| {r.scenario} | {ARM_LABELS[other]} | {_number(c.energy_ratio, '.3f')} | "
                f"{_beyond(c.energy_beyond_spread)} | {_percent(c.metric_gap)} | "
                f"{_beyond(c.metric_beyond_spread)} |"
            )
    saving = [(r, r.reduction) for r in results.values() if r.reduction is not None]
    if saving:
        lines += [
            "",
            "## Saving of α=0.75 over α=1",
            "",
            "Per seed 1 - E(α=0.75) / E(α=1) (same seed); mean (lowest–highest).",
            "",
            "| Scenario | Saving | Per seed | Same decisions per seed |",
            "|---|---:|---|---|",
        ]
        for r, reduction in saving:
            per_seed = ", ".join(_percent(v) for v in reduction.values)
            same = ", ".join(
                "yes" if r.same_decisions(run.seed) else "no" for run in r.arms["sm2"].runs
            )
            lines.append(
                f"| {r.scenario} | {_spread(reduction, _percent)} | {per_seed} | {same} |"
            )
    tolerance = f"{100 * METRIC_TOLERANCE:.0f}%"
    lines += [
        "",
        "## Targets of SM² α=0.75",
        "",
        f"| Scenario | Less energy than TPE + Hyperband | Less energy than grid | "
        f"Less energy than Zeus cost | "
        f"Metric within {tolerance} of the best arm | Metric within {tolerance} of α=1 |",
        "|---|---|---|---|---|---|",
    ]
    for r in results.values():
        t = r.targets
        best = ARM_LABELS.get(r.best_arm or "", "none")
        lines.append(
            f"| {r.scenario} | {_met(t['less_energy_than_tpe_hyperband'])} | "
            f"{_met(t['less_energy_than_grid'])} | {_met(t['less_energy_than_zeus_cost'])} | "
            f"{_met(t['metric_within_2pct_of_best_arm'])} (best: {best}) | "
            f"{_met(t['metric_within_2pct_of_alpha1'])} |"
        )
    arms = [a for a in ("alpha1", "sm2", "grid") if any(a in r.arms for r in results.values())]
    if arms:
        lines += [
            "",
            "## Configurations reached (batch size: last step)",
            "",
            f"| Scenario | Seed | {' | '.join(ARM_LABELS[a] for a in arms)} |",
            "|---|---|" + "---|" * len(arms),
        ]
        for r in results.values():
            for s in sorted({run.seed for a in r.arms.values() for run in a.runs}):
                cells = [_reached(r.arms[a].by_seed().get(s)) if a in r.arms else "" for a in arms]
                lines.append(f"| {r.scenario} | {s} | {' | '.join(cells)} |")
    notes = [
        f"- {r.scenario} {ARM_LABELS[name]} seed {run.seed}: {note}"
        for r in results.values()
        for name, runs in r.arms.items()
        for run in runs.runs
        for note in run.notes
    ]
    lines.append("")
    if notes:
        lines += ["Notes:", "", *notes, ""]
    return "\n".join(lines)


def _reached(arm: ArmResult | None) -> str:
    if arm is None:
        return ""
    chosen = arm.chosen_trial
    return ", ".join(
        f"**{t['batch_size']}: {t['last_step']}**"
        if t["trial"] == chosen
        else f"{t['batch_size']}: {t['last_step']}"
        for t in arm.trials_run
    )


def _params(params: dict[str, Any]) -> str:
    if not params:
        return "none"
    lr = params.get("lr")
    lr_text = f", lr {lr:.3g}" if isinstance(lr, (int, float)) else ""
    return f"batch {params.get('batch_size')}{lr_text}"


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
