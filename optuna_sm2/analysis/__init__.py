"""What a study holds, summarized: per-trial energy, totals, savings. No torch, no drawing."""

from __future__ import annotations

from optuna_sm2.analysis._summary import StudyReport, TrialSummary, summarize_study

__all__ = ["StudyReport", "TrialSummary", "summarize_study"]
