"""Energy per epoch against performance, with the Pareto front: data, then drawing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import plotly.graph_objects as go

from optuna_sm2.analysis import StudyReport, TrialSummary, format_number
from optuna_sm2.visualization._labels import (
    STATE_SYMBOLS,
    axis_title,
    energy_label,
    title,
    trial_label,
)

_FRONT = "#1f2937"
_FRONT_FILL = "rgba(31, 41, 55, 0.12)"
#: Points named on the figure itself (not only on hover): the front's, at most this many.
LABELLED = 6


@dataclass(frozen=True)
class ParetoPoint:
    """One trial: its energy per epoch (and the half-range of that figure, in joules, when
    the study stores a spread) against its last reported value."""

    trial: TrialSummary
    energy_per_epoch_j: float
    half_range_j: float | None
    value: float

    @property
    def below_j(self) -> float | None:
        """How far the error bar reaches below the figure: the half-range, but never below
        0 J (a spread wider than the figure itself is a bar down to 0 J, not to negative
        energy, which no epoch can have)."""
        return (
            None if self.half_range_j is None else min(self.half_range_j, self.energy_per_epoch_j)
        )


@dataclass(frozen=True)
class ParetoInfo:
    """The points, the front (ordered by energy) and what the axes say."""

    points: tuple[ParetoPoint, ...]
    front: tuple[ParetoPoint, ...]
    labelled: tuple[ParetoPoint, ...]
    maximize: bool
    metric: str
    energy_label: str


def pareto_front(points: tuple[ParetoPoint, ...], maximize: bool) -> tuple[ParetoPoint, ...]:
    """The points no other point beats on both lower energy and better value, by energy."""
    front: list[ParetoPoint] = []
    best: float | None = None
    for p in sorted(
        points, key=lambda p: (p.energy_per_epoch_j, -p.value if maximize else p.value)
    ):
        value = p.value if maximize else -p.value
        if best is None or value > best:
            front.append(p)
            best = value
    return tuple(front)


def best_labelled(front: tuple[ParetoPoint, ...], maximize: bool) -> tuple[ParetoPoint, ...]:
    """The front's points to name on the figure: all of them, or the :data:`LABELLED` with the
    best values (the end of the front that trades energy for quality), in energy order."""
    ranked = sorted(front, key=lambda p: -p.value if maximize else p.value)[:LABELLED]
    return tuple(p for p in front if p in ranked)


def get_pareto_info(summary: StudyReport) -> ParetoInfo:
    """Every trial with an energy per epoch and a finite last value."""
    points = tuple(
        ParetoPoint(
            trial=t,
            energy_per_epoch_j=t.energy_per_epoch_j,
            half_range_j=None
            if t.energy_per_epoch_spread is None
            else t.energy_per_epoch_spread * t.energy_per_epoch_j,
            value=t.last_value,
        )
        for t in summary.trials
        if t.energy_per_epoch_j is not None
        and t.last_value is not None
        and math.isfinite(t.last_value)
    )
    maximize = summary.direction == "maximize"
    front = pareto_front(points, maximize)
    return ParetoInfo(
        points=points,
        front=front,
        labelled=best_labelled(front, maximize),
        maximize=maximize,
        metric=summary.metric_name,
        energy_label=energy_label(summary),
    )


def _text_positions(n: int) -> list[str]:
    """Where each of ``n`` labels in energy order stands: the leftmost to the right of its
    point and the rightmost to the left, so that neither runs off the plot."""
    return [
        "top right" if i == 0 else "top left" if i == n - 1 else "top center" for i in range(n)
    ]


def _hover(p: ParetoPoint) -> str:
    spread = "" if p.half_range_j is None else f" ± {format_number(p.half_range_j)}"
    t = p.trial
    return (
        f"{trial_label(t)}, {t.state.lower()}<br>step {format_number(t.last_step, 'd')}"
        f"<br>stable LR {format_number(t.stable_lr)}"
        f"<br>{format_number(p.energy_per_epoch_j)}{spread} J/epoch"
    )


def plot_pareto(summary: StudyReport) -> go.Figure:
    """Each trial's energy per epoch (x, with its spread as error bars where stored, the lower
    bar stopping at 0 J) against its last reported value, marked by state; the Pareto front as
    a solid staircase over its highlighted points, bounding what the others are dominated by,
    its best points named (``#3 (batch 64)``) on the figure itself."""
    info = get_pareto_info(summary)
    fig = go.Figure()
    if info.front:
        line = {"shape": "hv", "color": _FRONT, "width": 3}
        last = info.front[-1]
        right = max(p.energy_per_epoch_j for p in info.points)
        fig.add_trace(
            go.Scatter(
                x=[p.energy_per_epoch_j for p in info.front],
                y=[p.value for p in info.front],
                mode="lines+markers",
                line=line,
                marker={"size": 20, "color": _FRONT_FILL, "line": {"width": 2, "color": _FRONT}},
                name="Pareto front",
                legendgroup="front",
                hoverinfo="skip",
            )
        )
        if right > last.energy_per_epoch_j:  # the last step, on to the right edge
            fig.add_trace(
                go.Scatter(
                    x=[last.energy_per_epoch_j, right],
                    y=[last.value, last.value],
                    mode="lines",
                    line=line,
                    legendgroup="front",
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    for state in sorted({p.trial.state for p in info.points}):
        chosen = [p for p in info.points if p.trial.state == state]
        spreads = [p.half_range_j for p in chosen]
        fig.add_trace(
            go.Scatter(
                x=[p.energy_per_epoch_j for p in chosen],
                y=[p.value for p in chosen],
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": spreads,
                    "arrayminus": [p.below_j for p in chosen],
                    "visible": True,
                    "thickness": 1.5,
                }
                if any(s is not None for s in spreads)
                else None,
                mode="markers",
                name=state.lower(),
                marker={"symbol": STATE_SYMBOLS.get(state, "diamond"), "size": 10},
                text=[_hover(p) for p in chosen],
                hovertemplate="%{text}<br>%{y:.4g}<extra></extra>",
            )
        )
    if info.labelled:  # named on the figure, so that a screenshot tells the points apart
        fig.add_trace(
            go.Scatter(
                x=[p.energy_per_epoch_j for p in info.labelled],
                y=[p.value for p in info.labelled],
                mode="text",
                name="best points' names",
                text=[trial_label(p.trial) for p in info.labelled],
                textposition=_text_positions(len(info.labelled)),
                cliponaxis=False,
                showlegend=False,
                hoverinfo="skip",
            )
        )
    better = "higher" if info.maximize else "lower"
    fig.update_layout(
        title=title(f"SM²: energy per epoch vs {info.metric}, Pareto front", info.energy_label),
        xaxis_title=axis_title("energy per epoch, J (lower is better)", info.energy_label),
        yaxis_title=axis_title(f"{info.metric}, last reported value", f"{better} is better"),
    )
    return fig
