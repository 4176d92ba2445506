"""SM²'s figures and notes for optuna-dashboard, drawn from the study summary.

As in Optuna's ``visualization``: each figure is computed from the summary into a small info
object (``get_*_info``), then drawn (``plot_*``).
"""

from __future__ import annotations

from optuna_sm2.visualization._attach import (
    FIGURE_IDS,
    AttachResult,
    attach_to_dashboard,
    build_figures,
)
from optuna_sm2.visualization._cumulative import plot_cumulative_energy
from optuna_sm2.visualization._energy_split import plot_energy_split
from optuna_sm2.visualization._notes import NOTE_HEADING, study_note, trial_note
from optuna_sm2.visualization._pareto import plot_pareto
from optuna_sm2.visualization._rung_scores import plot_rung_scores

__all__ = [
    "FIGURE_IDS",
    "NOTE_HEADING",
    "AttachResult",
    "attach_to_dashboard",
    "build_figures",
    "plot_cumulative_energy",
    "plot_energy_split",
    "plot_pareto",
    "plot_rung_scores",
    "study_note",
    "trial_note",
]
