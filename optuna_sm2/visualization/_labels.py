"""Labels every figure and note shares: trials, states, energy axes."""

from __future__ import annotations

from optuna_sm2.analysis import StudyReport, TrialSummary, source_label

STATE_SYMBOLS = {"COMPLETE": "circle", "PRUNED": "x", "FAIL": "triangle-down"}
"""Marker of each trial state; any other state (running) is a diamond."""


def trial_label(t: TrialSummary) -> str:
    """``#3`` or ``#3 (batch 64)``."""
    return f"#{t.number}" if t.batch_size is None else f"#{t.number} (batch {t.batch_size})"


def energy_label(summary: StudyReport) -> str:
    """What the study's energy figures are, for axis titles (see ``source_label``)."""
    return source_label(summary.energy_sources)


def title(text: str, subtitle: str) -> str:
    """A plotly title with a smaller second line."""
    return f"{text}<br><sup>{subtitle}</sup>"


def axis_title(text: str, note: str) -> str:
    """An axis title on two lines, ``text`` then ``(note)``: a vertical one stays within the
    plot's height instead of reaching up into the figure's title and subtitle."""
    return f"{text}<br>({note})"
