"""The benchmark's figures: ``plot_run``, the paper's Fig. 2 for one SM² study (metric, energy
per epoch and stable LR), ``plot_arms``, every arm's energy against its final metric, and
``plot_replay``, the replayed rules' energy against their final metric over α and β."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from optuna_sm2.scenarios._results import ARM_LABELS, ARMS, J_PER_WH, ScenarioResult
from optuna_sm2.training import Phase

if TYPE_CHECKING:
    from optuna_sm2.scenarios._replay_report import RuleSummary


def plot_run(
    result: ScenarioResult, phases: Sequence[Phase], path: str | Path, *, arm: str = "sm2"
) -> Path:
    """Write a PNG of ``arm``'s study on its first seed: three stacked panels against the step.

    One line per configuration (batch size): the validation metric, the energy per epoch (J,
    scaled to a full pass) and the stable learning rate (log scale). Exploration steps (from the
    schedule's ``phases``) are shaded and drawn as crosses; the vanilla run (its first seed, when
    it was run) is a grey dashed line, its epochs placed at the thorough-training steps of the
    schedule. The metric axis spans the 5th to 95th percentile of the values (plus a margin), so
    that a diverged configuration does not flatten the others.

    Needs matplotlib (the ``[scenarios]`` extra); uses the Agg backend.
    """
    plt = _pyplot()
    run = result.arms[arm].runs[0]
    fig, axes = plt.subplots(3, 1, figsize=(7.0, 7.0), sharex=True, dpi=90)
    explore_steps = [p.step for p in phases if p.kind == "explore"]
    train_steps = [p.step for p in phases if p.kind == "train"]
    for ax in axes:
        for step in explore_steps:
            ax.axvspan(step - 0.5, step + 0.5, color="0.92", lw=0)
    for trial in sorted({r.trial for r in run.steps}):
        rows = sorted((r for r in run.steps if r.trial == trial), key=lambda r: r.step)
        label = f"batch {rows[0].batch_size}"
        steps = [r.step for r in rows]
        (line,) = axes[0].plot(steps, [r.value for r in rows], marker=".", label=label)
        color = line.get_color()
        energy = [(r.step, r.energy_per_epoch_j) for r in rows if r.energy_per_epoch_j is not None]
        axes[1].plot([s for s, _ in energy], [e for _, e in energy], marker=".", color=color)
        axes[2].plot(steps, [r.lr for r in rows], marker=".", color=color)
        for ax, ys in ((axes[0], [r.value for r in rows]), (axes[2], [r.lr for r in rows])):
            marks = [(r.step, y) for r, y in zip(rows, ys, strict=True) if r.kind == "explore"]
            ax.plot([s for s, _ in marks], [y for _, y in marks], "x", color=color, ms=7)
    first_vanilla = result.arms["vanilla"].runs[0].steps if "vanilla" in result.arms else ()
    vanilla = sorted(first_vanilla, key=lambda r: r.step)
    placed = [(train_steps[r.step], r) for r in vanilla if r.step < len(train_steps)]
    if placed:
        steps_v = [s for s, _ in placed]
        axes[0].plot(steps_v, [r.value for _, r in placed], "--", color="0.4", label="vanilla")
        axes[1].plot(steps_v, [r.energy_per_epoch_j for _, r in placed], "--", color="0.4")
    values = [r.value for r in (*run.steps, *vanilla) if math.isfinite(r.value)]
    if values:
        # A diverged configuration's metric (a perplexity of e^50) would flatten the rest.
        lo, hi = float(np.percentile(values, 5)), float(np.percentile(values, 95))
        pad = 0.15 * (hi - lo) or 0.05 * abs(hi) or 1.0
        axes[0].set_ylim(lo - pad, hi + pad)
    axes[0].set_ylabel(result.metric_name)
    axes[1].set_ylabel("energy per epoch (J)")
    axes[2].set_ylabel("stable LR")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("step (shaded: exploration)")
    axes[0].legend(fontsize="small", ncol=2)
    axes[0].set_title(
        f"{result.scenario}: {result.description}, {ARM_LABELS[arm]}, seed {run.seed}",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_arms(results: dict[str, ScenarioResult], path: str | Path) -> Path:
    """Write a PNG with one panel per scenario: every arm's total energy (Wh) against its final
    metric, one small dot per seed and a large marker at the means, with bars over the seeds'
    range. Needs matplotlib (the ``[scenarios]`` extra); uses the Agg backend."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(results), figsize=(4.2 * len(results), 4.0), dpi=90, squeeze=False
    )
    colors = {arm: f"C{i}" for i, arm in enumerate(ARMS)}
    markers = dict(zip(ARMS, "sD^ovP", strict=True))
    for ax, result in zip(axes[0], results.values(), strict=True):
        for arm in ARMS:
            if arm not in result.arms:
                continue
            runs = result.arms[arm]
            energy = [v / J_PER_WH for v in runs.energy_j.values]
            metric = list(runs.metric.values)
            ax.plot(energy, metric, ".", color=colors[arm], alpha=0.5)
            e, m = runs.energy_j, runs.metric
            if not (math.isfinite(e.mean) and math.isfinite(m.mean)):
                continue
            ax.errorbar(
                e.mean / J_PER_WH,
                m.mean,
                xerr=[[(e.mean - e.low) / J_PER_WH], [(e.high - e.mean) / J_PER_WH]],
                yerr=[[m.mean - m.low], [m.high - m.mean]],
                fmt=markers[arm],
                color=colors[arm],
                ms=8,
                capsize=3,
                label=ARM_LABELS[arm],
            )
        better = "higher" if result.direction == "maximize" else "lower"
        ax.set_title(f"{result.scenario}: {result.metric_name} ({better} is better)", fontsize=10)
        ax.set_xlabel("total energy (Wh)")
        ax.set_ylabel(result.metric_name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_replay(
    curve: Sequence[RuleSummary], rules: Sequence[RuleSummary], path: str | Path
) -> Path:
    """Write a PNG with one panel per scenario: the replayed rules' energy (Wh, mean over the
    tables) against their final metric (mean), one line per β over the α points of ``curve``
    (α labelled), and the named ``rules`` as large markers. Needs matplotlib; Agg backend."""
    plt = _pyplot()
    scenarios = list(dict.fromkeys(s.scenario for s in curve))
    fig, axes = plt.subplots(
        1, len(scenarios), figsize=(4.6 * len(scenarios), 4.2), dpi=90, squeeze=False
    )
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        own = [s for s in curve if s.scenario == scenario]
        for i, beta in enumerate(dict.fromkeys(s.rule.beta for s in own)):
            line = sorted((s for s in own if s.rule.beta == beta), key=lambda s: s.rule.alpha)
            energy = [s.energy_j.mean / J_PER_WH for s in line]
            metric = [s.metric.mean for s in line]
            ax.plot(energy, metric, "-o", ms=3, color=f"C{i}", alpha=0.6, label=f"β={beta:g}")
            for s, e, m in zip(line, energy, metric, strict=True):
                ax.annotate(f"{s.rule.alpha:g}", (e, m), fontsize=6, color=f"C{i}")
        for j, s in enumerate(x for x in rules if x.scenario == scenario):
            ax.plot(
                s.energy_j.mean / J_PER_WH,
                s.metric.mean,
                "sD^ovP*XhH<>"[j % 12],
                ms=8,
                mfc="none",
                color="k",
                label=s.rule.name,
            )
        ax.set_title(f"{scenario}: {len(own[0].runs)} table(s), α labelled", fontsize=10)
        ax.set_xlabel("energy of what the rule trained (Wh)")
        ax.set_ylabel("final metric")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported when a figure is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
