"""``run_bench``: the paper's Table 1 and Fig. 2 on the scenarios, written to a folder."""

from __future__ import annotations

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

from optuna_sm2.energy import EnergyMeter, auto_meter
from optuna_sm2.scenarios import load_scenario
from optuna_sm2.scenarios._arms import run_sm2, run_vanilla
from optuna_sm2.scenarios._figure import plot_run
from optuna_sm2.scenarios._results import ArmResult, ScenarioResult

ALPHA1 = (1.0, 0.5)
SM2 = (0.75, 0.5)
"""(alpha, beta) of the two SM² arms: Optuna's successive halving, and the paper's default."""


def run_bench(
    names: Sequence[str],
    budget: str,
    out_dir: str | Path,
    *,
    meter: EnergyMeter | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> dict[str, ScenarioResult]:
    """Run the three arms on each scenario, in this process, one after another.

    Per scenario, with the same seed and the same ``meter`` (``auto_meter()`` when ``None``):
    (a) ``vanilla``, one ordinary training run of the middle batch size at the scenario's
    conventional LR for ``schedule.train_epochs_total`` epochs with early stopping;
    (b) ``alpha1``, SM² with α=1 (Optuna's successive halving with SM²'s exploration);
    (c) ``sm2``, SM² with α=0.75, β=0.5. Writes ``results.json``, ``results.md`` and one
    ``<scenario>.png`` per scenario (the ``sm2`` arm, Fig. 2 style) into ``out_dir`` (created),
    rewriting the JSON and table after every scenario so that a stopped run keeps what it did.

    Raises:
        ValueError: unknown scenario or budget.
        ScenarioDataMissing: a scenario's data package is not installed (checked for every
            scenario before anything runs).
    """
    say = progress or (lambda message: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scenarios = [load_scenario(name, budget, seed=seed) for name in names]
    meter = meter if meter is not None else auto_meter()
    meta = {
        "budget": budget,
        "seed": seed,
        "device": device,
        "energy_source": meter.source,
        "energy_is_estimate": meter.is_estimate,
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {_cpu_count()} CPU cores",
    }
    results: dict[str, ScenarioResult] = {}
    for scenario in scenarios:
        schedule = scenario.budget.schedule
        epochs = schedule.train_epochs_total
        started = time.perf_counter()

        def tell(arm: str, name: str = scenario.name) -> Callable[[str], None]:
            return lambda message: say(f"[{name} {arm}] {message}")

        say(
            f"[{scenario.name}] {scenario.description}: {scenario.data_source}; "
            f"batch sizes {list(scenario.budget.batch_sizes)}, rungs at "
            f"{schedule.rung_steps}, energy source {meter.source}"
        )
        vanilla = run_vanilla(
            scenario, meter, epochs, seed=seed, device=device, progress=tell("vanilla")
        )
        alpha1 = run_sm2(
            scenario,
            "alpha1",
            alpha=ALPHA1[0],
            beta=ALPHA1[1],
            meter=meter,
            seed=seed,
            device=device,
            progress=tell("α=1"),
        )
        sm2 = run_sm2(
            scenario,
            "sm2",
            alpha=SM2[0],
            beta=SM2[1],
            meter=meter,
            seed=seed,
            device=device,
            progress=tell("α=0.75"),
        )
        budget_ = scenario.budget
        result = ScenarioResult(
            scenario=scenario.name,
            description=scenario.description,
            metric_name=scenario.metric_name,
            direction=scenario.direction,
            vanilla=vanilla,
            alpha1=alpha1,
            sm2=sm2,
            settings={
                "batch_sizes": list(budget_.batch_sizes),
                "n_lrs": budget_.n_lrs,
                "lr_min": budget_.lr_min,
                "lr_max": budget_.lr_max,
                "explore_fraction": budget_.explore_fraction,
                "epochs_per_rung": budget_.epochs_per_rung,
                "final_epochs": budget_.final_epochs,
                "train_epochs_total": epochs,
                "vanilla_patience": budget_.patience,
                "conventional_lr": scenario.conventional_lr,
                "data": scenario.data_source,
            },
        )
        results[scenario.name] = result
        plot_run(result, schedule.phases, out / f"{scenario.name}.png")
        write_results(results, meta, out)
        say(
            f"[{scenario.name}] done in {time.perf_counter() - started:.0f} s: "
            f"reduction {100 * result.reduction:.1f}%, parity {result.parity:.2f}"
        )
    return results


def write_results(
    results: dict[str, ScenarioResult], meta: dict[str, Any], out_dir: str | Path
) -> None:
    """``results.json`` (one entry per scenario, each with the run's ``meta``: machine, energy
    source, date, budget) and ``results.md`` in ``out_dir``."""
    out = Path(out_dir)
    payload = {name: {**r.to_json(), "meta": meta} for name, r in results.items()}
    (out / "results.json").write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    (out / "results.md").write_text(format_table(results, meta))


def _wh(joules: float) -> str:
    return f"{joules / 3600.0:.4f}"


def _metric(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "n/a"


def format_table(results: dict[str, ScenarioResult], meta: dict[str, Any]) -> str:
    """Markdown: the paper's Table 1 (Wh, reduction, parity), then metrics and wall times."""
    estimate = " (an estimate, not a measurement)" if meta.get("energy_is_estimate") else ""
    lines = [
        f"# SM² benchmark, budget `{meta.get('budget')}`",
        "",
        f"Energy source: `{meta.get('energy_source')}`{estimate}. Machine: {meta.get('machine')}, "
        f"Python {meta.get('python')}, torch {meta.get('torch')} "
        f"({meta.get('torch_threads')} threads), device {meta.get('device')}. "
        f"Date: {meta.get('date')}. Seed {meta.get('seed')}.",
        "",
        "| Model / data | Vanilla (Wh) | SM² α=1 (Wh) | SM² α=0.75 (Wh) | Reduction | Parity |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results.values():
        lines.append(
            f"| {r.scenario}: {r.description} | {_wh(r.vanilla.total_energy_j)} | "
            f"{_wh(r.alpha1.total_energy_j)} | {_wh(r.sm2.total_energy_j)} | "
            f"{100 * r.reduction:.1f}% | {r.parity:.2f} |"
        )
    lines += [
        "",
        "Reduction = 1 - E(α=0.75) / E(α=1); parity = E(α=0.75) / E(vanilla).",
        "",
        "| Scenario | Metric | Vanilla | α=1 | α=0.75 | Gap α=0.75 vs α=1 | "
        "Best (α=1) | Best (α=0.75) | Wall s (vanilla / α=1 / α=0.75) |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results.values():
        lines.append(
            f"| {r.scenario} | {r.metric_name} ({r.direction[:3]}) | "
            f"{_metric(r.vanilla.final_metric)} | {_metric(r.alpha1.final_metric)} | "
            f"{_metric(r.sm2.final_metric)} | {100 * r.metric_gap:+.2f}% | "
            f"{_params(r.alpha1.best_params)} | {_params(r.sm2.best_params)} | "
            f"{r.vanilla.wall_s:.0f} / {r.alpha1.wall_s:.0f} / {r.sm2.wall_s:.0f} |"
        )
    lines += ["", "Gap: relative, positive when α=0.75 ends worse than α=1.", ""]
    lines += ["| Scenario | Configurations reached (batch size: last step), α=1 | α=0.75 |"]
    lines += ["|---|---|---|"]
    for r in results.values():
        same = " (the same decisions)" if r.same_decisions else ""
        lines.append(f"| {r.scenario}{same} | {_reached(r.alpha1)} | {_reached(r.sm2)} |")
    lines.append("")
    notes = [
        f"- {r.scenario} {arm.arm}: {note}"
        for r in results.values()
        for arm in (r.vanilla, r.alpha1, r.sm2)
        for note in arm.notes
    ]
    if notes:
        lines += ["Notes:", "", *notes, ""]
    return "\n".join(lines)


def _reached(arm: ArmResult) -> str:
    return ", ".join(f"{t['batch_size']}: {t['last_step']}" for t in arm.trials_run)


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
