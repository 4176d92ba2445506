"""``run_replay``: every rule replayed on the grid tables of a folder, as tables and a curve.

Per scenario and rule: the energy and final metric over the seeds, the saving over α=1 with its
per-seed values, whether the decisions were α=1's, and on how many seeds the rule spent more
than α=1 beyond the table's resolution at an equal final metric. Written as ``replay.json``,
``replay.md`` and ``replay.png`` (energy against final metric for many α, β points).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna_sm2.scenarios._arms import grid_result
from optuna_sm2.scenarios._figure import plot_replay
from optuna_sm2.scenarios._replay import ALPHA1, RULES, Replayed, Rule, curve_rules, replay_all
from optuna_sm2.scenarios._results import J_PER_WH, Spread
from optuna_sm2.scenarios._store import write_json
from optuna_sm2.scenarios._table import GridTable, load_tables


def resolution_j(table: GridTable, replayed: Replayed) -> float:
    """The most the meter's steps can put between two sums of the windows ``replayed``
    trained: one counter step per window edge (two windows, work and evaluation, per step);
    0 when the table's resolution is unknown."""
    step_j = (table.resolution or {}).get("step_j")
    if step_j is None:
        return 0.0
    steps = sum(last + 1 for _, last in replayed.decisions)
    return 2.0 * 2.0 * steps * float(step_j)


@dataclass(frozen=True)
class RuleSummary:
    """One rule on one scenario over its tables (seeds), against α=1 on the same tables."""

    scenario: str
    rule: Rule
    runs: tuple[Replayed, ...]
    alpha1: tuple[Replayed, ...]
    slack_j: tuple[float, ...]
    """Per seed, the resolution of the larger of the two sums compared (:func:`resolution_j`)."""

    @property
    def energy_j(self) -> Spread:
        return Spread(tuple(r.energy_j for r in self.runs))

    @property
    def metric(self) -> Spread:
        return Spread(tuple(r.final_metric for r in self.runs))

    @property
    def saving(self) -> Spread:
        """Per seed ``1 - E(rule) / E(α=1)`` on the same table."""
        return Spread(tuple(1.0 - r.energy_j / a.energy_j for r, a in self._pairs))

    @property
    def same_decisions(self) -> tuple[bool, ...]:
        return tuple(r.decisions == a.decisions for r, a in self._pairs)

    @property
    def costlier_at_equal_metric(self) -> int:
        """Seeds where the rule ended with α=1's final metric and spent more than α=1 beyond
        the table's resolution."""
        return sum(
            r.final_metric == a.final_metric and r.energy_j - a.energy_j > slack
            for (r, a), slack in zip(self._pairs, self.slack_j, strict=True)
        )

    @property
    def _pairs(self) -> list[tuple[Replayed, Replayed]]:
        return list(zip(self.runs, self.alpha1, strict=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule.to_json(),
            "energy_j": self.energy_j.to_json(),
            "final_metric": self.metric.to_json(),
            "saving_vs_alpha1": self.saving.to_json(),
            "same_decisions_as_alpha1": list(self.same_decisions),
            "costlier_than_alpha1_at_equal_metric": self.costlier_at_equal_metric,
            "per_seed": [r.to_json() for r in self.runs],
        }


def summarize(
    tables: Sequence[GridTable], replayed: Sequence[Replayed], rules: Sequence[Rule]
) -> list[RuleSummary]:
    """One :class:`RuleSummary` per scenario and rule (``replayed`` holds α=1 on every table)."""
    found = {(r.scenario, r.seed, r.rule.name): r for r in replayed}
    summaries = []
    for scenario in dict.fromkeys(t.scenario for t in tables):
        own = [t for t in tables if t.scenario == scenario]
        for rule in rules:
            runs = tuple(found[(scenario, t.seed, rule.name)] for t in own)
            alpha1 = tuple(found[(scenario, t.seed, ALPHA1.name)] for t in own)
            slack = tuple(
                max(resolution_j(t, r), resolution_j(t, a))
                for t, r, a in zip(own, runs, alpha1, strict=True)
            )
            summaries.append(RuleSummary(scenario, rule, runs, alpha1, slack))
    return summaries


def _wh(spread: Spread) -> str:
    return _ranged(Spread(tuple(v / J_PER_WH for v in spread.values)), ".4f")


def _ranged(spread: Spread, digits: str) -> str:
    if not math.isfinite(spread.mean):
        return "n/a"
    if len(spread.values) < 2:
        return format(spread.mean, digits)
    return (
        f"{format(spread.mean, digits)} ({format(spread.low, digits)}–"
        f"{format(spread.high, digits)})"
    )


def _percent(x: float) -> str:
    return f"{100 * x:+.1f}%" if math.isfinite(x) else "n/a"


def format_replay(tables: Sequence[GridTable], summaries: Sequence[RuleSummary]) -> str:
    """Markdown: the tables replayed (source, resolution, machine, date), then per scenario every
    rule's energy, final metric, saving over α=1 with its per-seed values and decisions."""
    lines = [
        "# Rules replayed on the grid tables",
        "",
        "Each rule re-run by the real pruner on the same measurements (the grid's every step): "
        "identical decisions cost identical energy. Energy: the table's joules of what the rule "
        "trained (explorations and evaluations included). Mean over the seeds (lowest–highest). "
        "Saving: per seed 1 - E(rule) / E(α=1) on the same table. Costlier: seeds where the "
        "rule ended with α=1's final metric and spent more than α=1 beyond the table's "
        "resolution.",
        "",
        "| Scenario | Budget | Seeds | Energy source | Resolution (step) | Machine | Date |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in dict.fromkeys(t.scenario for t in tables):
        own = [t for t in tables if t.scenario == scenario]
        first = own[0]
        step = (first.resolution or {}).get("step_j")
        estimate = " (estimate)" if first.energy_is_estimate else ""
        lines.append(
            f"| {scenario} | {first.budget} | {', '.join(str(t.seed) for t in own)} | "
            f"`{first.energy_source}`{estimate} | "
            f"{'unknown' if step is None else f'{step:.3g} J'} | "
            f"{first.meta.get('machine', 'n/a')} | {first.meta.get('date', 'n/a')} |"
        )
    lines += [
        "",
        "| Scenario | Rule | Energy (Wh) | Final metric | Saving vs α=1 | Per seed | "
        "Same decisions as α=1 | Costlier at equal metric |",
        "|---|---|---:|---:|---:|---|---|---:|",
    ]
    for s in summaries:
        saving = s.saving
        lines.append(
            f"| {s.scenario} | {s.rule.name} | {_wh(s.energy_j)} | {_ranged(s.metric, '.4f')} | "
            f"{_percent(saving.mean)} | {', '.join(_percent(v) for v in saving.values)} | "
            f"{', '.join('yes' if same else 'no' for same in s.same_decisions)} | "
            f"{s.costlier_at_equal_metric} of {len(s.runs)} |"
        )
    lines += ["", "Grid (every configuration trained to the end) on the same tables:", ""]
    lines += ["| Scenario | Energy (Wh) | Final metric |", "|---|---:|---:|"]
    for scenario in dict.fromkeys(t.scenario for t in tables):
        grids = [grid_result(t) for t in tables if t.scenario == scenario]
        energy = Spread(tuple(g.total_energy_j for g in grids))
        lines.append(
            f"| {scenario} | {_wh(energy)} | "
            f"{_ranged(Spread(tuple(g.final_metric for g in grids)), '.4f')} |"
        )
    return "\n".join(lines) + "\n"


def run_replay(folder: str | Path, out_dir: str | Path) -> str:
    """Replay :data:`RULES` and the curve's α, β points on every complete grid table under
    ``folder``; write ``replay.json``, ``replay.md`` and ``replay.png`` into ``out_dir``; return
    the markdown.

    Raises:
        ValueError: ``folder`` is not a folder or holds no complete grid table.
    """
    tables = load_tables(folder)
    if not tables:
        raise ValueError(f"{folder} holds no complete grid table (<scenario>-seed<N>.json)")
    curve = curve_rules()
    rules = [*RULES, *(r for r in curve if r.name not in {x.name for x in RULES})]
    replayed = replay_all(tables, rules)
    table_rules = summarize(tables, replayed, RULES)
    curve_points = summarize(tables, replayed, curve)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = format_replay(tables, table_rules)
    write_json(
        out / "replay.json",
        {
            "tables": [
                {k: v for k, v in t.to_json().items() if k != "configurations"} for t in tables
            ],
            "rules": [s.to_json() for s in table_rules],
            "curve": [s.to_json() for s in curve_points],
        },
    )
    (out / "replay.md").write_text(text)
    plot_replay(curve_points, table_rules, out / "replay.png")
    return text
