"""The Markdown notes optuna-dashboard shows: the study's headline and each trial's SM² part."""

from __future__ import annotations

from optuna_sm2.analysis import (
    J_PER_WH,
    StudyReport,
    TrialSummary,
    format_joules,
    format_number,
    plural,
    source_label,
)

NOTE_HEADING = "### SM² (written by `optuna-sm2 dashboard`)"
"""First line of the part of a note that ``attach_to_dashboard`` owns.

Everything from this line to the end of the note is replaced on each attach; text a user wrote
above it is kept."""


_MARKUP = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _inert(markdown: str) -> str:
    """``markdown`` with every HTML tag and entity, autolink, link and image made plain text
    (``&``, ``<``, ``>`` as entities, ``](`` as ``]\\(``): what a note shows from storage
    (names, sources, notes) can then be no markup. The notes' own Markdown uses none of these.

    >>> _inert("<img src=x onerror=alert(1)> [click](javascript:x) & window [1, 2]")
    '&lt;img src=x onerror=alert(1)&gt; [click]\\\\(javascript:x) &amp; window [1, 2]'
    """
    return "".join(_MARKUP.get(c, c) for c in markdown).replace("](", "]\\(")


def _joules(x: float | None) -> str:
    return "unmeasured" if x is None else f"{format_joules(x)} J"


def _energy_total(t: TrialSummary) -> str:
    if t.energy_total_j is None:
        return "unmeasured (no sm2.energy_total_j; not counted as 0 J)"
    text = (
        f"{_joules(t.energy_total_j)} (exploration {_joules(t.energy_explore_j)}, "
        f"training {_joules(t.energy_train_j)}, evaluation {_joules(t.energy_eval_j)})"
    )
    if t.energy_invalid_windows:
        missing = plural(t.energy_invalid_windows, "window")
        text += f"; partly measured: {missing} missing, a lower bound"
    return text


def _per_epoch(t: TrialSummary) -> str:
    if t.energy_per_epoch_j is None:
        return "-"
    spread = (
        ""
        if t.energy_per_epoch_spread is None
        else f" ± {100 * t.energy_per_epoch_spread:.3g} % (half-range of its windows)"
    )
    return f"{format_joules(t.energy_per_epoch_j)} J{spread}"


def trial_note(summary: StudyReport, number: int) -> str:
    """The SM² part of trial ``number``'s note (Markdown): energy and its source, chosen LR
    and window, and each rung's score, terms and the pruner's decision. Starts with
    :data:`NOTE_HEADING`."""
    t = summary.trial(number)
    window = (
        "-"
        if t.lr_window is None
        else f"[{format_number(t.lr_window[0])}, {format_number(t.lr_window[1])}]"
    )
    lines = [
        NOTE_HEADING,
        "",
        f"- energy source: {source_label([t.energy_source] if t.energy_source else [])}",
        f"- energy total: {_energy_total(t)}",
        f"- energy per epoch: {_per_epoch(t)}",
        f"- chosen learning rate: {format_number(t.stable_lr)}, window {window}, "
        f"diverged at {format_number(t.lr_diverged_at)}",
        f"- epochs trained: {format_number(t.epochs_trained, 'd')}, "
        f"explorations: {format_number(t.explorations, 'd')}",
    ]
    if t.resumed_from is not None:
        lines.append(f"- resumed from trial {t.resumed_from}")
    own = [(r, r.entry(number)) for r in summary.rungs if number in r.outcomes]
    if not own:
        lines.append("- rung decisions: none (reached no rung)")
    else:
        lines.append("- rung decisions:")
        for rung, e in own:
            d = e.decision
            left_out = ""
            if not e.stored and rung.ranking.left_out:
                left_out = f"; {', '.join(rung.ranking.left_out)} left out"
            why = e.explanation()
            lines.append(
                f"  - rung {rung.rung}: value {format_number(e.record.value)}, score "
                f"{d.score:.3f} (α·P {d.terms['performance']:.3f}, (1-α)·β·E "
                f"{d.terms['energy']:.3f}, (1-α)·(1-β)·LR {d.terms['lr']:.3f}{left_out}), "
                f"{e.basis}: {e.verdict}; then {e.outcome}" + ("" if why is None else f" ({why})")
            )
    return _inert("\n".join(lines)) + "\n"


def study_note(summary: StudyReport) -> str:
    """The study's headline (Markdown): total energy and its source, exploration share,
    energy spent on pruned trials, the saving against training every configuration to the
    end, the best configuration and the pruner's settings. Starts with :data:`NOTE_HEADING`."""
    kinds = set(summary.energy_kinds)
    kind = (
        " (estimated)" if "estimate" in kinds else " (simulated)" if "simulated" in kinds else ""
    )
    measured, n = summary.measured_trials, len(summary.trials)
    lines = [NOTE_HEADING, ""]
    if measured == 0:
        lines.append(f"- total energy: unmeasured (none of the {n} trials holds a total)")
    else:
        total = summary.total_energy_j
        lines.append(
            f"- total energy{kind}: **{format_joules(total)} J** "
            f"({total / J_PER_WH:.4g} Wh) over {measured} of {n} trials; "
            f"{source_label(summary.energy_sources)}"
        )
        share = summary.exploration_share
        lines.append(
            f"- exploration: {format_joules(summary.explore_energy_j)} J"
            + ("" if share is None else f" ({100 * share:.1f} % of the total)")
        )
        lines.append(
            f"- spent on pruned trials{kind}: {format_joules(summary.pruned_energy_j)} J"
            + (f" ({100 * summary.pruned_energy_j / total:.1f} %)" if total > 0 else "")
        )
    if summary.saving_j is not None and summary.projected_energy_j is not None:
        lines.append(
            f"- saving against training every configuration to the end{kind}: "
            f"**{format_joules(summary.saving_j)} J, {format_number(summary.saving_pct, '.1f')} %"
            f"** of {format_joules(summary.projected_energy_j)} J projected"
        )
    else:
        lines.append("- saving: not computed (no projection: see the notes below)")
    if summary.best_trial is None:
        lines.append("- best configuration: none yet (no trial completed)")
    else:
        best = summary.trial(summary.best_trial)
        lines.append(
            f"- best configuration: {best.title}, stable LR {format_number(best.stable_lr)}: "
            f"{summary.metric_name} {format_number(best.value)}, {_joules(best.energy_total_j)}"
        )
    lines.append(f"- pruner: {summary.describe_pruner()}")
    lines += [f"- note: {note}" for note in summary.notes]
    return _inert("\n".join(lines)) + "\n"


def merge_note(existing: str, ours: str) -> str:
    """``existing`` with its SM² part (from :data:`NOTE_HEADING` on) replaced by ``ours``."""
    index = existing.find(NOTE_HEADING)
    kept = existing if index < 0 else existing[:index]
    kept = kept.rstrip()
    return f"{kept}\n\n{ours}" if kept else ours
