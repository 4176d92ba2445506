"""Saving the figures, the notes and the metric name into a study for optuna-dashboard.

Everything is computed once, into the study summary (:func:`optuna_sm2.analysis.summarize_study`),
and drawn from it. Figures are saved with ``optuna_dashboard.save_plotly_graph_object`` under
fixed ids, notes with ``optuna_dashboard.save_note``; both end up as JSON strings in the study's
system attributes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna

from optuna_sm2 import _compat
from optuna_sm2.analysis import StudyReport, summarize_study
from optuna_sm2.visualization._cumulative import plot_cumulative_energy
from optuna_sm2.visualization._energy_split import plot_energy_split
from optuna_sm2.visualization._notes import merge_note, study_note, trial_note
from optuna_sm2.visualization._pareto import plot_pareto
from optuna_sm2.visualization._rung_scores import plot_rung_scores

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from optuna_sm2.pruners import LRScale

FIGURE_IDS = {
    "pareto": "sm2-energy-vs-performance",
    "energy_split": "sm2-energy-per-trial",
    "score": "sm2-rung-scores",
    "cumulative": "sm2-cumulative-energy",
}
"""Graph-object id of each figure. Fixed, so that attaching again overwrites instead of adding."""

_PLOTS: dict[str, Callable[[StudyReport], go.Figure]] = {
    "pareto": plot_pareto,
    "energy_split": plot_energy_split,
    "score": plot_rung_scores,
    "cumulative": plot_cumulative_energy,
}


@dataclass(frozen=True)
class AttachResult:
    """What :func:`attach_to_dashboard` wrote: the figure ids, the trials whose note changed,
    and whether the study's note changed."""

    figure_ids: tuple[str, ...]
    notes_written: tuple[int, ...]
    study_note_written: bool = False


def figures_of(summary: StudyReport) -> dict[str, go.Figure]:
    """The SM² figures drawn from ``summary``, keyed by their graph-object id."""
    return {FIGURE_IDS[name]: plot(summary) for name, plot in _PLOTS.items()}


def build_figures(
    study: optuna.Study,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    lr_scale: LRScale | None = None,
) -> dict[str, go.Figure]:
    """The SM² figures of ``study``, keyed by their graph-object id (:data:`FIGURE_IDS`).

    - ``sm2-energy-vs-performance``: each trial's energy per epoch (with its spread as error
      bars where stored) against its last reported value, marked by state, with the Pareto
      front (lower energy, better value in the study's direction) as a solid staircase;
    - ``sm2-energy-per-trial``: each measured trial's ``sm2.energy_total_j`` stacked by
      phase: exploration, training, evaluation, and what the trial did not split;
    - ``sm2-rung-scores``: at every rung, each competitor's Eq. 2 score stacked as α·P,
      (1-α)·β·E and (1-α)·(1-β)·LR, with the pruner's decision (``rank_rung``);
    - ``sm2-cumulative-energy``: the running sum of ``sm2.energy_total_j`` over the measured
      trials ordered by completion (start, for unfinished trials).

    Every energy axis and title names the energy source and what it is. ``alpha``, ``beta``
    and ``lr_scale`` rank the rungs of a study that does not store its pruner's settings
    (``sm2.pruner``); a study that does is drawn with its own.

    Raises:
        ValueError: the study holds no SM² data, is multi-objective, or an override is out
            of its range.
    """
    return figures_of(summarize_study(study, alpha=alpha, beta=beta, lr_scale=lr_scale))


def attach_to_dashboard(
    study: optuna.Study,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    lr_scale: LRScale | None = None,
) -> AttachResult:
    """Save the SM² figures, the study's and each trial's note and the metric name of
    ``study`` for optuna-dashboard.

    Figures (:func:`build_figures`) go through ``optuna_dashboard.save_plotly_graph_object``
    with the fixed ids of :data:`FIGURE_IDS`, which overwrites the previous version, so
    attaching again never duplicates them. The study's note gets the headline and each
    trial's note an SM² part, through ``optuna_dashboard.save_note``; text the user wrote above
    ``NOTE_HEADING`` is kept, and a note whose content would not change is not rewritten. The
    metric name becomes ``sm2.schedule["metric_name"]`` when the study stores one. All of it
    is JSON in the study's system attributes; nothing is pickled.

    Raises:
        ValueError: as :func:`build_figures`.
    """
    import optuna_dashboard

    summary = summarize_study(study, alpha=alpha, beta=beta, lr_scale=lr_scale)
    figures = figures_of(summary)
    for graph_id, figure in figures.items():
        optuna_dashboard.save_plotly_graph_object(study, figure, graph_object_id=graph_id)

    schedule = summary.schedule or {}
    if schedule.get("metric_name") and study.metric_names != [summary.metric_name]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([summary.metric_name])

    existing = optuna_dashboard.get_note(study)
    note = merge_note(existing, study_note(summary))
    if note != existing:
        optuna_dashboard.save_note(study, note)

    frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
    # A Trial handle is what save_note takes; a random sampler makes opening one side-effect free.
    view = optuna.load_study(
        study_name=study.study_name,
        storage=_compat.storage_of(study),
        sampler=optuna.samplers.RandomSampler(),
    )
    written: list[int] = []
    for t in summary.trials:
        handle = _compat.trial_handle(view, frozen[t.number])
        existing_trial = optuna_dashboard.get_note(handle)
        trial_text = merge_note(existing_trial, trial_note(summary, t.number))
        if trial_text != existing_trial:
            optuna_dashboard.save_note(handle, trial_text)
            written.append(t.number)
    return AttachResult(
        figure_ids=tuple(figures),
        notes_written=tuple(written),
        study_note_written=note != existing,
    )
