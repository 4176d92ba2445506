"""``optuna-sm2 report``: what a study's trials spent, and what pruning saved."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from optuna_sm2.analysis._summary import StudyReport, TrialSummary, summarize_study
from optuna_sm2.cli._common import add_storage_option, load_study

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
_LEFT_ALIGNED = frozenset({"state", "source"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="print what a study's trials spent and what pruning saved",
        description=(
            "Summarize the energy of an SM² study: per trial (state, batch size, stable LR, "
            "energy per epoch, total energy, last reported value, rung reached) and for the "
            "study (total J and Wh, exploration share, energy spent on pruned trials, and the "
            "saving against training every configuration to the end, projected from the "
            "study's sm2.schedule). Figures from an estimating meter are labelled as estimates."
        ),
    )
    add_storage_option(parser)
    parser.add_argument("--study", required=True, metavar="NAME", help="the study's name")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    summary = summarize_study(load_study(args.storage, args.study))
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, allow_nan=False))
    else:
        print(format_report(summary))
    return 0


def _fmt(x: float | int | str | None, spec: str = "") -> str:
    return "-" if x is None else format(x, spec)


def _row(t: TrialSummary) -> tuple[str, ...]:
    return (
        str(t.number),
        t.state,
        _fmt(t.batch_size),
        _fmt(t.stable_lr, ".3g"),
        _fmt(t.energy_per_epoch_j, ".1f"),
        _fmt(t.energy_total_j, ".1f"),
        _fmt(t.energy_explore_j, ".1f"),
        _fmt(t.last_value, ".4g"),
        _fmt(t.last_step),
        _fmt(t.rung),
        _fmt(t.energy_source),
    )


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in (_COLUMNS, *rows)) for i in range(len(_COLUMNS))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if name in _LEFT_ALIGNED else c.rjust(w)
            for name, c, w in zip(_COLUMNS, cells, widths, strict=True)
        ).rstrip()

    return [line(_COLUMNS), *(line(r) for r in rows)]


def _energy(joules: float) -> str:
    return f"{joules:.1f} J ({joules / 3600.0:.4g} Wh)"


def _projection_rule(summary: StudyReport) -> str:
    schedule = summary.schedule or {}
    epochs, explorations = schedule.get("train_epochs_total"), schedule.get("explorations_total")
    return (
        "projection: complete and retried trials count what they spent; every other trial "
        f"adds J/epoch x ({epochs} - epochs trained) + its J per exploration x "
        f"({explorations} - explorations done), from sm2.schedule"
    )


def format_report(summary: StudyReport) -> str:
    """The text form of ``summary``: an aligned per-trial table, then the study's totals."""
    lines = [
        f"study {summary.study_name!r} ({summary.direction}), {len(summary.trials)} trials",
        "",
        *_table([_row(t) for t in summary.trials]),
        "",
    ]
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
    share = summary.exploration_share
    lines += [
        f"total energy{kind}: {_energy(summary.total_energy_j)}",
        f"exploration share: {_fmt(None if share is None else 100.0 * share, '.1f')} %",
        f"spent on pruned trials{kind}: {_energy(summary.pruned_energy_j)}",
    ]
    if summary.projected_energy_j is not None and summary.saving_j is not None:
        lines += [
            f"projected, every configuration trained to the end{kind}: "
            f"{_energy(summary.projected_energy_j)}",
            f"saving{kind}: {_energy(summary.saving_j)}, "
            f"{_fmt(summary.saving_pct, '.1f')} % of the projection",
            _projection_rule(summary),
        ]
    lines += [f"note: {note}" for note in summary.notes]
    return "\n".join(lines)
