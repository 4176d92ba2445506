"""Each trial's total energy split by phase: data, then drawing."""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from optuna_sm2.analysis import StudyReport, TrialSummary, plural
from optuna_sm2.visualization._labels import axis_title, energy_label, title, trial_label

PHASES = (
    "exploration",
    "training",
    "evaluation",
    "not split (training + evaluation, or unattributed)",
)


@dataclass(frozen=True)
class EnergySplitInfo:
    """Per measured trial (in trial order) the joules of each of :data:`PHASES`; the
    unmeasured trials, which have no bar; and what the axis says."""

    labels: tuple[str, ...]
    phases: dict[str, tuple[float, ...]]
    missing_windows: tuple[int, ...]
    unmeasured: tuple[str, ...]
    energy_label: str


def _parts(t: TrialSummary) -> tuple[float, float, float, float]:
    total = t.energy_total_j or 0.0
    explore, train, evaluate = (
        t.energy_explore_j or 0.0,
        t.energy_train_j or 0.0,
        t.energy_eval_j or 0.0,
    )
    return explore, train, evaluate, max(total - explore - train - evaluate, 0.0)


def get_energy_split_info(summary: StudyReport) -> EnergySplitInfo:
    measured = [t for t in summary.trials if t.energy_total_j is not None]
    parts = [_parts(t) for t in measured]
    return EnergySplitInfo(
        labels=tuple(trial_label(t) for t in measured),
        phases={name: tuple(p[i] for p in parts) for i, name in enumerate(PHASES)},
        missing_windows=tuple(t.energy_invalid_windows or 0 for t in measured),
        unmeasured=tuple(trial_label(t) for t in summary.trials if t.energy_total_j is None),
        energy_label=energy_label(summary),
    )


def plot_energy_split(summary: StudyReport) -> go.Figure:
    """Stacked bars of ``sm2.energy_total_j`` by phase: exploration, training, evaluation and
    what the trial did not split. A phase no trial has is not drawn (exploration always is).
    A partly measured trial says in its hover how many windows its total misses; unmeasured
    trials get no bar (never a 0 J one) and are named under the title."""
    info = get_energy_split_info(summary)
    missing = [
        "" if n == 0 else f"<br>{plural(n, 'window')} not measured: a lower bound"
        for n in info.missing_windows
    ]
    fig = go.Figure()
    for name, ys in info.phases.items():
        if any(y > 0.0 for y in ys) or name == PHASES[0]:
            fig.add_trace(
                go.Bar(
                    x=list(info.labels),
                    y=list(ys),
                    name=name,
                    customdata=missing,
                    hovertemplate="%{x}<br>%{y:.4g} J%{customdata}<extra>" + name + "</extra>",
                )
            )
    subtitle = info.energy_label
    if info.unmeasured:
        subtitle += f"; unmeasured, no bar: {', '.join(info.unmeasured)}"
    fig.update_layout(
        barmode="stack",
        title=title("SM²: total energy per trial, by phase", subtitle),
        xaxis_title="trial",
        yaxis_title=axis_title("energy, J", info.energy_label),
    )
    return fig
