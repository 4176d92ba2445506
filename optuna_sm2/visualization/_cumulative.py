"""The study's energy summed over time: data, then drawing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import plotly.graph_objects as go

from optuna_sm2.analysis import J_PER_WH, StudyReport, plural
from optuna_sm2.visualization._labels import axis_title, energy_label, title, trial_label


@dataclass(frozen=True)
class CumulativeInfo:
    """The measured trials in the order they finished (started, while running) with the
    running sum of their totals; how many trials are unmeasured."""

    times: tuple[datetime, ...]
    labels: tuple[str, ...]
    cumulative_j: tuple[float, ...]
    unmeasured: int
    energy_label: str


def get_cumulative_info(summary: StudyReport) -> CumulativeInfo:
    timed = sorted(
        (
            (t.datetime_complete or t.datetime_start, t)
            for t in summary.trials
            if t.energy_total_j is not None and (t.datetime_complete or t.datetime_start)
        ),
        key=lambda p: (p[0], p[1].number),
    )
    cumulative, total = [], 0.0
    for _, t in timed:
        total += t.energy_total_j or 0.0
        cumulative.append(total)
    return CumulativeInfo(
        times=tuple(when for when, _ in timed if when is not None),
        labels=tuple(f"{trial_label(t)} {t.state.lower()}" for _, t in timed),
        cumulative_j=tuple(cumulative),
        unmeasured=len(summary.unmeasured_trials),
        energy_label=energy_label(summary),
    )


def plot_cumulative_energy(summary: StudyReport) -> go.Figure:
    """The running sum of ``sm2.energy_total_j`` over the measured trials, ordered by
    completion (start, for unfinished trials), as a step line over time."""
    info = get_cumulative_info(summary)
    fig = go.Figure(
        go.Scatter(
            x=[when.isoformat() for when in info.times],
            y=list(info.cumulative_j),
            mode="lines+markers",
            line={"shape": "hv"},
            name="cumulative energy",
            text=list(info.labels),
            customdata=[c / J_PER_WH for c in info.cumulative_j],
            hovertemplate="%{x}<br>%{text}<br>%{y:.4g} J (%{customdata:.4g} Wh)<extra></extra>",
        )
    )
    subtitle = info.energy_label
    if info.unmeasured:
        subtitle += f"; {plural(info.unmeasured, 'unmeasured trial')} not counted"
    fig.update_layout(
        title=title("SM²: cumulative study energy over time", subtitle),
        xaxis_title="trial finished (started, while running)",
        yaxis_title=axis_title("cumulative energy, J", info.energy_label),
    )
    return fig
