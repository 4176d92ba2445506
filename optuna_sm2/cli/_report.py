"""``optuna-sm2 report``: what a study's trials spent, what pruning saved, and how each rung
was decided."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from optuna_sm2.analysis import (
    J_PER_WH,
    RungSummary,
    StudyReport,
    TrialSummary,
    format_joules,
    format_number,
    format_trials,
    plural,
    summarize_study,
    unreported_everywhere,
)
from optuna_sm2.cli._common import add_storage_option, load_study
from optuna_sm2.cli._ranking_options import add_ranking_options, ranking_overrides

_COLUMNS = (
    "trial",
    "state",
    "batch",
    "stable LR",
    "J/epoch",
    "total J",
    "explore J",
    "last value",
    "step",
    "rung",
    "source",
)
_RUNG_COLUMNS = (
    "trial",
    "value",
    "J/epoch",
    "stable LR",
    "α·P",
    "(1-α)·β·E",
    "(1-α)·(1-β)·LR",
    "score",
    "rank",
    "decision",
    "then",
)
_LEFT_ALIGNED = frozenset({"state", "source", "decision", "then"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="print what a study's trials spent, what pruning saved and how rungs were decided",
        description=(
            "Summarize the energy of an SM² study: per trial (state, batch size, stable LR, "
            "energy per epoch, total energy, last reported value, rung reached; 'unmeasured' "
            "for a trial without an energy total) and for the study (total J and Wh over the "
            "measured trials, exploration share, energy spent on pruned trials, and the saving "
            "against training every configuration to the end, projected from the study's "
            "sm2.schedule over its finished, measured trials). Then each rung: every "
            "competitor's Eq. 2 score and terms, its rank and the pruner's decision, ranked "
            "with the pruner settings the study stores (sm2.pruner). Figures from an "
            "estimating meter are labelled as estimates."
        ),
    )
    add_storage_option(parser)
    parser.add_argument("--study", required=True, metavar="NAME", help="the study's name")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_ranking_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    overrides = ranking_overrides(args)
    summary = summarize_study(load_study(args.storage, args.study), **overrides)
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, allow_nan=False))
    else:
        print(format_report(summary))
    return 0


def _fmt(x: float | int | str | None, spec: str = "") -> str:
    return "-" if x is None else format(x, spec)


def _per_epoch(joules: float | None, spread: float | None) -> str:
    if joules is None:
        return "-"
    return format_joules(joules) + ("" if spread is None else f" ±{100 * spread:.2g}%")


def _total(t: TrialSummary) -> str:
    if t.energy_total_j is None:
        return "unmeasured"
    return format_joules(t.energy_total_j) + ("*" if t.energy_invalid_windows else "")


def _row(t: TrialSummary) -> tuple[str, ...]:
    return (
        str(t.number),
        t.state,
        _fmt(t.batch_size),
        _fmt(t.stable_lr, ".3g"),
        _per_epoch(t.energy_per_epoch_j, t.energy_per_epoch_spread),
        _total(t),
        "-" if t.energy_explore_j is None else format_joules(t.energy_explore_j),
        _fmt(t.last_value, ".4g"),
        _fmt(t.last_step),
        _fmt(t.rung),
        _fmt(t.energy_source),
    )


def _table(columns: Sequence[str], rows: Sequence[tuple[str, ...]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in (tuple(columns), *rows)) for i in range(len(columns))]

    def line(cells: Sequence[str]) -> str:
        return (
            indent
            + "  ".join(
                c.ljust(w) if name in _LEFT_ALIGNED else c.rjust(w)
                for name, c, w in zip(columns, cells, widths, strict=True)
            ).rstrip()
        )

    return [line(columns), *(line(r) for r in rows)]


def _energy(joules: float) -> str:
    return f"{format_joules(joules)} J ({joules / J_PER_WH:.4g} Wh)"


def _projection_rule(summary: StudyReport) -> str:
    schedule = summary.schedule or {}
    epochs, explorations = schedule.get("train_epochs_total"), schedule.get("explorations_total")
    return (
        "projection: complete and retried trials count what they spent; every other finished "
        f"trial adds J/epoch x ({epochs} - epochs trained) + its J per exploration x "
        f"({explorations} - explorations done), from sm2.schedule; running and unmeasured "
        "trials are left out of it and of the saving"
    )


def _rung_rows(rung: RungSummary) -> list[tuple[str, ...]]:
    return [
        (
            str(e.trial),
            format_number(e.record.value),
            _per_epoch(e.record.energy_per_epoch_j, e.record.energy_per_epoch_spread),
            _fmt(e.record.stable_lr, ".3g"),
            f"{e.terms['performance']:.3f}",
            f"{e.terms['energy']:.3f}",
            f"{e.terms['lr']:.3f}",
            f"{e.score:.3f}",
            str(e.rank),
            "promoted" if e.promoted else "pruned",
            rung.outcomes[e.trial],
        )
        for e in rung.ranking.entries
    ]


def _rung_heading(rung: RungSummary, chosen: tuple[str, ...]) -> str:
    ranking = rung.ranking
    n = len(ranking.records)
    step = "" if rung.step is None else f" (step {rung.step})"
    rule = (
        f"the best {ranking.promote_count} (and ties) promoted"
        if not ranking.bootstrapping
        else "too few to promote any (bootstrap_count)"
    )
    weights = ", ".join(f"{name} {w:.3g}" for name, w in ranking.weights.items())
    left_out = "".join(
        f"; {name} left out (missing for trial {format_trials(trials)})"
        for name, trials in ranking.left_out.items()
        if name not in chosen  # no trial of the study reports it: said once, in a note
    )
    return (
        f"rung {rung.rung}{step}: {plural(n, 'competitor')}, {rule}; weights {weights}{left_out}"
    )


def format_rungs(summary: StudyReport) -> list[str]:
    """How each rung was ranked: the settings, then per rung its competitors' scores, terms,
    ranks and the pruner's decisions (``rank_rung``), and what each trial did next."""
    if not summary.rungs:
        return ["rungs: none reached"]
    lines = [f"pruner: {summary.describe_pruner()}"]
    chosen = unreported_everywhere(summary.rungs)
    for rung in summary.rungs:
        rows = _table(_RUNG_COLUMNS, _rung_rows(rung), "  ")
        lines += ["", _rung_heading(rung, chosen), *rows]
    return lines


def format_report(summary: StudyReport) -> str:
    """The text form of ``summary``: an aligned per-trial table, the study's totals, then
    the rungs."""
    lines = [
        f"study {summary.study_name!r} ({summary.direction} {summary.metric_name}), "
        f"{len(summary.trials)} trials",
        "",
        *_table(_COLUMNS, [_row(t) for t in summary.trials]),
        "",
    ]
    if summary.partly_measured_trials:
        lines[-1:] = ["* partly measured: windows missing, the total is a lower bound", ""]
    sources = ", ".join(summary.energy_sources) or "unknown (no sm2.energy_source)"
    kind = ""
    if summary.is_estimate:
        kind = " (estimated)"
        lines.append(f"energy source: {sources}: the figures are ESTIMATES, not measurements")
    elif summary.is_simulated:
        kind = " (simulated)"
        lines.append(f"energy source: {sources}: the figures are SIMULATED, not measurements")
    else:
        lines.append(f"energy source: {sources}")
    measured, n = summary.measured_trials, len(summary.trials)
    if measured == 0:
        lines.append(f"total energy: unmeasured (none of the {n} trials holds sm2.energy_total_j)")
    else:
        share = summary.exploration_share
        lines += [
            f"total energy{kind}: {_energy(summary.total_energy_j)}, {measured} of {n} trials "
            "measured",
            f"exploration share: {_fmt(None if share is None else 100.0 * share, '.1f')} %",
            f"spent on pruned trials{kind}: {_energy(summary.pruned_energy_j)}",
        ]
    if (
        summary.projected_energy_j is not None
        and summary.saving_j is not None
        and summary.saving_basis_j
    ):
        lines += [
            f"projected, every configuration trained to the end{kind}: "
            f"{_energy(summary.projected_energy_j)}",
            f"saving{kind}: {_energy(summary.saving_j)}, "
            f"{_fmt(summary.saving_pct, '.1f')} % of the projection",
            _projection_rule(summary),
        ]
    if summary.best_trial is not None:
        best = summary.trial(summary.best_trial)
        lines.append(
            f"best configuration: {best.title}, {summary.metric_name} {format_number(best.value)}"
        )
    lines += ["", *format_rungs(summary)]
    if summary.notes:
        lines.append("")
    lines += [f"note: {note}" for note in summary.notes]
    return "\n".join(lines)
