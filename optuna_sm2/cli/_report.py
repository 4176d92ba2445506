"""``optuna-sm2 report``: what a study's trials spent, what pruning saved, and how each rung
was decided."""

from __future__ import annotations

import argparse
import json
import unicodedata
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
            "competitor's Eq. 2 score and terms, its rank among the competitors it was ranked "
            "against and the pruner's decision, as the pruner stored them when it decided "
            "(records without a stored decision are ranked now with the pruner settings the "
            "study stores, sm2.pruner), what each trial did next, and why where the two "
            "disagree. Figures from an estimating meter are labelled as estimates."
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
            f"{e.decision.terms['performance']:.3f}",
            f"{e.decision.terms['energy']:.3f}",
            f"{e.decision.terms['lr']:.3f}",
            f"{e.decision.score:.3f}",
            f"{e.decision.rank}/{e.decision.competitors}" + ("" if e.stored else "*"),
            e.verdict,
            e.outcome,
        )
        for e in rung.entries
    ]


def _rung_heading(rung: RungSummary, chosen: tuple[str, ...]) -> str:
    ranking = rung.ranking
    n = len(ranking.records)
    step = "" if rung.step is None else f" (step {rung.step})"
    left_out = "".join(
        f"; {name} left out (missing for trial {format_trials(trials)})"
        for name, trials in ranking.left_out.items()
        if name not in chosen  # no trial of the study reports it: said once, in a note
    )
    if rung.all_stored:
        rule = (
            "each decided when it reached the rung, among the trials there then (rank r/n: "
            "of n competitors then; the best max(n // reduction_factor, 1) and ties promoted)"
        )
        return f"rung {rung.rung}{step}: {plural(n, 'competitor')}; {rule}{left_out}"
    rule = (
        f"the best {ranking.promote_count} (and ties) promoted"
        if not ranking.bootstrapping
        else "too few to promote any (bootstrap_count)"
    )
    weights = ", ".join(f"{name} {w:.3g}" for name, w in ranking.weights.items())
    return (
        f"rung {rung.rung}{step}: {plural(n, 'competitor')}, {rule}; weights {weights}{left_out}"
    )


_RANKED_NOW = (
    "* no decision stored in the record: the rung's records ranked now with the pruner's "
    "settings (the synchronous schedule's own decision, which ranks every configuration "
    "together; for records of an older optuna-sm2 from study.optimize, an approximation)"
)


def format_rungs(summary: StudyReport) -> list[str]:
    """How each rung was decided: the settings, then per rung its competitors' scores, terms,
    ranks and the pruner's decisions (as it stored them when it decided, else ranked now with
    ``rank_rung``), what each trial did next, and why where the two disagree."""
    if not summary.rungs:
        return ["rungs: none reached"]
    lines = [f"pruner: {summary.describe_pruner()}"]
    chosen = unreported_everywhere(summary.rungs)
    for rung in summary.rungs:
        rows = _table(_RUNG_COLUMNS, _rung_rows(rung), "  ")
        lines += ["", _rung_heading(rung, chosen), *rows]
        lines += [f"  why: {why}" for e in rung.entries if (why := e.explanation())]
    if not all(rung.all_stored for rung in summary.rungs):
        lines += ["", _RANKED_NOW]
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
    return printable("\n".join(lines))


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    r"""``text`` with every control character but the newline, and every bidirectional override,
    written as its escape (``\x1b``): a string read from storage (a study name, an attribute)
    can then neither move the cursor, clear the screen, set the title nor reorder the line.

    >>> print(printable("study \x1b]0;owned\x07\x1b[2J\u202eok\tdone"))
    study \x1b]0;owned\x07\x1b[2J\u202eok\tdone
    """
    return "".join(
        c.encode("unicode_escape").decode("ascii")
        if c != "\n" and (unicodedata.category(c) == "Cc" or c in _BIDI)
        else c
        for c in text
    )
