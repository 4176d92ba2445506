"""What a study holds, summarized: per-trial energy, totals, savings, every rung ranked with
the pruner's rule, and what each energy figure is. No torch, no drawing."""

from __future__ import annotations

from optuna_sm2.analysis._format import format_joules, format_number, format_trials, plural
from optuna_sm2.analysis._rungs import RungEntry, RungSummary, unreported_everywhere
from optuna_sm2.analysis._sources import source_kind, source_label
from optuna_sm2.analysis._summary import J_PER_WH, StudyReport, summarize_study
from optuna_sm2.analysis._trial import TrialSummary

__all__ = [
    "J_PER_WH",
    "RungEntry",
    "RungSummary",
    "StudyReport",
    "TrialSummary",
    "format_joules",
    "format_number",
    "format_trials",
    "plural",
    "source_kind",
    "source_label",
    "summarize_study",
    "unreported_everywhere",
]
