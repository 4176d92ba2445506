"""Every rung's Eq. 2 scores, split into their weighted terms, with the pruner's decisions:
data (the study summary's entries: the decisions stored when the pruner decided, else ranked
now with ``rank_rung``), then drawing."""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from optuna_sm2.analysis import RungEntry, RungSummary, StudyReport, format_number, plural
from optuna_sm2.pruners import COMPONENTS
from optuna_sm2.visualization._labels import title

TERM_TITLES = {
    "performance": "α·P (performance)",
    "energy": "(1-α)·β·E (energy per epoch)",
    "lr": "(1-α)·(1-β)·LR (stable learning rate)",
}


@dataclass(frozen=True)
class RungBar:
    """One competitor at one rung, with the pruner's decision for it."""

    rung: RungSummary
    entry: RungEntry

    @property
    def verdict(self) -> str:
        """``promoted`` or ``pruned``: the pruner's decision."""
        return self.entry.verdict

    def describe(self) -> str:
        """Rank, decision, what the trial did next and, where they disagree, why, in words."""
        d = self.entry.decision
        rule = (
            f"{plural(d.competitors, 'competitor')}, too few to promote any"
            if self.entry.bootstrapping
            else f"the best {d.promote_count} (and ties) promoted"
        )
        why = self.entry.explanation()
        return f"{self.entry.basis} ({rule}): {self.verdict}; then {self.entry.outcome}" + (
            "" if why is None else f"<br>{why}"
        )


@dataclass(frozen=True)
class RungScoresInfo:
    """Every competitor of every rung, by rung then trial; the weights and their origin."""

    bars: tuple[RungBar, ...]
    alpha: float
    beta: float
    origin: str


def get_rung_scores_info(summary: StudyReport) -> RungScoresInfo:
    return RungScoresInfo(
        bars=tuple(RungBar(r, e) for r in summary.rungs for e in r.entries),
        alpha=summary.pruner.alpha,
        beta=summary.pruner.beta,
        origin={
            "study": "stored in the study by its pruner",
            "arguments": "given to the dashboard (the study does not store the pruner's)",
            "defaults": "the pruner's defaults (the study does not store the ones it ran with)",
        }[summary.pruner_origin],
    )


def _hover(bar: RungBar) -> str:
    record = bar.entry.record
    spread = (
        ""
        if record.energy_per_epoch_spread is None
        else f" ± {100 * record.energy_per_epoch_spread:.3g} %"
    )
    left_out = ", ".join(bar.rung.ranking.left_out)
    return (
        f"value {format_number(record.value)}, "
        f"{format_number(record.energy_per_epoch_j)}{spread} J/epoch, "
        f"stable LR {format_number(record.stable_lr)}"
        + (f"<br>left out at this rung (missing for some trial): {left_out}" if left_out else "")
        + (
            "<br>diverged (far worse than the rung's median): ranked last, not in the others' "
            "rescaling"
            if bar.entry.decision.diverged
            else ""
        )
    )


def plot_rung_scores(summary: StudyReport) -> go.Figure:
    """At every rung, each competitor's Eq. 2 score as a stacked bar of its terms α·P,
    (1-α)·β·E and (1-α)·(1-β)·LR, and a marker for the pruner's decision: a circle where
    it promoted, a cross where it pruned. The scores, terms and decisions are those the pruner
    stored when it decided (asynchronous studies decide each trial when it arrives); a rung
    whose records store none is ranked now (:func:`optuna_sm2.pruners.rank_rung`)."""
    info = get_rung_scores_info(summary)
    x = [[f"rung {b.rung.rung}" for b in info.bars], [f"#{b.entry.trial}" for b in info.bars]]
    hover = [_hover(b) for b in info.bars]
    fig = go.Figure()
    for name in COMPONENTS:
        fig.add_trace(
            go.Bar(
                x=x,
                y=[b.entry.decision.terms[name] for b in info.bars],
                name=TERM_TITLES[name],
                customdata=hover,
                hovertemplate="%{x}<br>%{y:.3f}<br>%{customdata}<extra>"
                + TERM_TITLES[name]
                + "</extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[b.entry.decision.score for b in info.bars],
            mode="markers",
            name="score: ● promoted, ✕ pruned",
            marker={
                "symbol": ["circle" if b.entry.promoted else "x" for b in info.bars],
                "size": 10,
                "color": "black",
            },
            text=[b.describe() for b in info.bars],
            hovertemplate="%{x}<br>score %{y:.3f}<br>%{text}<extra></extra>",
        )
    )
    fig.update_layout(
        barmode="stack",
        title=title(
            f"SM²: Eq. 2 score per rung, α={info.alpha:g}, β={info.beta:g}", f"α, β {info.origin}"
        ),
        xaxis_title="rung, trial",
        yaxis_title="score (1 is best), split into its weighted terms",
    )
    return fig
