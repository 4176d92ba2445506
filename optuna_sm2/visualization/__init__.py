"""SM²'s figures and trial notes for optuna-dashboard, drawn from the study summary."""

from __future__ import annotations

from optuna_sm2.visualization._dashboard import attach_to_dashboard, build_figures

__all__ = ["attach_to_dashboard", "build_figures"]
