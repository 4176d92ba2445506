"""SM² figures and per-trial notes for optuna-dashboard, built from what the study stores.

Reads only the keys of ``docs/stored-data.md`` (through :func:`summarize_study` where it has
them); imports neither torch nor the training code. Figures are saved with
``optuna_dashboard.save_plotly_graph_object`` under fixed ids, notes with
``optuna_dashboard.save_note``; both end up as JSON strings in the study's system attributes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
import plotly.graph_objects as go
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_sm2 import _compat
from optuna_sm2._validation import check_choice, check_unit_interval
from optuna_sm2.analysis._summary import J_PER_WH, StudyReport, TrialSummary, summarize_study
from optuna_sm2.attrs import (
    ENERGY_EVAL_J,
    ENERGY_TRAIN_J,
    LR_DIVERGED_AT,
    LR_WINDOW,
    RESUMED_FROM,
    SCHEDULE,
)
from optuna_sm2.pruners._records import RungRecord, own_records
from optuna_sm2.pruners._weighted_objective import (
    LR_SCALES,
    LRScale,
    component_weights,
    weighted_components,
    weighted_objective,
)

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

FIGURE_IDS = {
    "pareto": "sm2-energy-vs-performance",
    "energy_split": "sm2-energy-per-trial",
    "score": "sm2-rung-scores",
    "cumulative": "sm2-cumulative-energy",
}
"""Graph-object id of each figure. Fixed, so that attaching again overwrites instead of adding."""

NOTE_HEADING = "### SM² (written by `optuna-sm2 dashboard`)"
"""First line of the part of a trial's note that :func:`attach_to_dashboard` owns.

Everything from this line to the end of the note is replaced on each attach; text a user wrote
above it is kept."""

_STATE_SYMBOLS = {"COMPLETE": "circle", "PRUNED": "x", "FAIL": "triangle-down"}


@dataclass(frozen=True)
class RungScore:
    """One trial's standing at one rung, from the records of all its competitors there.

    ``parts`` maps each Eq. 2 component (``performance``, ``energy``, ``lr``) to its weighted
    share of ``score``; ``left_out`` names the components missing for some competitor, which
    the ranking therefore left out (the other weights renormalized, as the pruner does).
    ``decision`` is ``promoted``, ``pruned``, ``undecided`` or ``failed``.
    """

    rung: int
    trial: int
    record: RungRecord
    score: float
    parts: Mapping[str, float]
    competitors: int
    left_out: tuple[str, ...]
    decision: str


@dataclass(frozen=True)
class AttachResult:
    """What :func:`attach_to_dashboard` wrote: the figure ids and the trials whose note changed."""

    figure_ids: tuple[str, ...]
    notes_written: tuple[int, ...]


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def source_label(sources: Sequence[str]) -> str:
    """What the energy figures are, in words: each source with ``an estimate``, ``simulated``
    or ``measured``; an estimate is never called a measurement.

    Example:
        >>> from optuna_sm2.visualization._dashboard import source_label
        >>> source_label(["cpu-time-estimate"])
        'cpu-time-estimate: an estimate'
        >>> source_label(["nvml-counter+rapl", "simulated"])
        'nvml-counter+rapl: measured; simulated: simulated, not measured'
    """
    if not sources:
        return "energy source unknown (no sm2.energy_source)"

    def kind(source: str) -> str:
        if "estimate" in source:
            return "an estimate"
        if "simulated" in source:
            return "simulated, not measured"
        return "measured"

    return "; ".join(f"{s}: {kind(s)}" for s in sources)


def _direction(study: optuna.Study) -> StudyDirection:
    if len(study.directions) != 1:
        raise ValueError(
            f"study {study.study_name!r} has {len(study.directions)} objectives; SM² studies "
            "are single-objective"
        )
    return study.direction


def _metric_name(study: optuna.Study) -> str:
    schedule = study.user_attrs.get(SCHEDULE)
    name = schedule.get("metric_name") if isinstance(schedule, Mapping) else None
    if isinstance(name, str) and name:
        return name
    names = study.metric_names
    return names[0] if names else "objective value"


def _decision(trial: FrozenTrial, rung: int, records: Mapping[int, RungRecord]) -> str:
    if rung + 1 in records or trial.state == TrialState.COMPLETE:
        return "promoted"
    if trial.state == TrialState.PRUNED:
        return "pruned"
    if trial.state == TrialState.FAIL:
        return "failed"
    return "undecided"


def _column(records: Sequence[RungRecord], weight: float, field: str) -> list[float] | None:
    """The attribute over all records, or ``None`` when its weight is 0 or any record lacks it
    (the pruner's rule)."""
    if weight == 0.0:
        return None
    column = [getattr(r, field) for r in records]
    if any(x is None or not math.isfinite(x) for x in column):
        return None
    return [float(x) for x in column]


def rung_scores(
    study: optuna.Study,
    *,
    alpha: float = 0.75,
    beta: float = 0.5,
    lr_scale: LRScale = "log",
) -> list[RungScore]:
    """Every trial's Eq. 2 score at every rung it reached, split into its weighted components.

    At rung ``r`` the competitors are the trials holding their own ``sm2:rung_<r>`` record
    (inherited copies do not count), in any state, as for the pruner. Scores come from
    :func:`weighted_objective` over those records with the study's direction and the given
    ``alpha``, ``beta`` and ``lr_scale``; the study does not store the pruner's own, so they are
    arguments. An attribute missing for any competitor is left out, as the pruner leaves it out.
    Sorted by rung, then trial number.

    Raises:
        ValueError: ``alpha`` or ``beta`` outside [0, 1], an unknown ``lr_scale``, or a
            multi-objective study.
    """
    check_unit_interval("alpha", alpha)
    check_unit_interval("beta", beta)
    check_choice("lr_scale", lr_scale, LR_SCALES)
    direction = "maximize" if _direction(study) == StudyDirection.MAXIMIZE else "minimize"
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    held = {t.number: own_records(t.number, t.system_attrs) for t in trials}
    by_number = {t.number: t for t in trials}
    _, w_energy, w_lr = component_weights(alpha, beta)
    scores: list[RungScore] = []
    for rung in sorted({r for records in held.values() for r in records}):
        numbers = [n for n in sorted(held) if rung in held[n]]
        records = [held[n][rung] for n in numbers]
        energies = _column(records, w_energy, "energy_per_epoch_j")
        lrs = _column(records, w_lr, "stable_lr")
        left_out = tuple(
            name
            for name, weight, column in (("energy", w_energy, energies), ("lr", w_lr, lrs))
            if weight > 0.0 and column is None
        )
        values = [r.value for r in records]
        kwargs: dict[str, Any] = {
            "alpha": alpha,
            "beta": beta,
            "direction": direction,
            "lr_scale": lr_scale,
        }
        total = weighted_objective(values, energies, lrs, **kwargs)
        parts = weighted_components(values, energies, lrs, **kwargs)
        for i, (number, record) in enumerate(zip(numbers, records, strict=True)):
            scores.append(
                RungScore(
                    rung=rung,
                    trial=number,
                    record=record,
                    score=float(total[i]),
                    parts={name: float(part[i]) for name, part in parts.items()},
                    competitors=len(numbers),
                    left_out=left_out,
                    decision=_decision(by_number[number], rung, held[number]),
                )
            )
    return scores


def _trial_label(t: TrialSummary) -> str:
    return f"#{t.number}" if t.batch_size is None else f"#{t.number} (batch {t.batch_size})"


def _pareto(points: Sequence[tuple[float, float, int]], maximize: bool) -> list[int]:
    """Indices of the points no other point beats on both lower energy and better value,
    ordered by energy."""
    front: list[int] = []
    best: float | None = None
    order = sorted(
        range(len(points)),
        key=lambda i: (points[i][0], -points[i][1] if maximize else points[i][1]),
    )
    for i in order:
        value = points[i][1] if maximize else -points[i][1]
        if best is None or value > best:
            front.append(i)
            best = value
    return front


def _pareto_figure(summary: StudyReport, metric: str, maximize: bool, label: str) -> go.Figure:
    trials = [
        t
        for t in summary.trials
        if t.energy_per_epoch_j is not None
        and t.last_value is not None
        and math.isfinite(t.last_value)
    ]
    points = [(t.energy_per_epoch_j or 0.0, t.last_value or 0.0, t.number) for t in trials]
    fig = go.Figure()
    for state in sorted({t.state for t in trials}):
        chosen = [t for t in trials if t.state == state]
        fig.add_trace(
            go.Scatter(
                x=[t.energy_per_epoch_j for t in chosen],
                y=[t.last_value for t in chosen],
                mode="markers",
                name=state.lower(),
                marker={"symbol": _STATE_SYMBOLS.get(state, "diamond"), "size": 10},
                text=[
                    f"{_trial_label(t)}<br>step {t.last_step}<br>stable LR {t.stable_lr}"
                    for t in chosen
                ],
                hovertemplate="%{text}<br>%{x:.4g} J/epoch<br>%{y:.4g}<extra></extra>",
            )
        )
    front = [trials[i] for i in _pareto(points, maximize)]
    fig.add_trace(
        go.Scatter(
            x=[t.energy_per_epoch_j for t in front],
            y=[t.last_value for t in front],
            mode="lines",
            line={"shape": "hv", "dash": "dot", "color": "black"},
            name="Pareto front",
            hoverinfo="skip",
        )
    )
    better = "higher" if maximize else "lower"
    fig.update_layout(
        title=f"SM²: energy per epoch vs {metric}, Pareto front<br><sup>{label}</sup>",
        xaxis_title=f"energy per epoch, J (lower is better) ({label})",
        yaxis_title=f"{metric}, last reported value ({better} is better)",
    )
    return fig


def _energy_split_figure(
    summary: StudyReport, trials: Mapping[int, FrozenTrial], label: str
) -> go.Figure:
    shown = [t for t in summary.trials if t.energy_total_j is not None]
    names = [_trial_label(t) for t in shown]
    explore = [t.energy_explore_j or 0.0 for t in shown]
    train = [_number(trials[t.number].user_attrs.get(ENERGY_TRAIN_J)) for t in shown]
    evaluate = [_number(trials[t.number].user_attrs.get(ENERGY_EVAL_J)) for t in shown]
    rest = [
        max((t.energy_total_j or 0.0) - e - (tr or 0.0) - (ev or 0.0), 0.0)
        for t, e, tr, ev in zip(shown, explore, train, evaluate, strict=True)
    ]
    fig = go.Figure()
    for name, ys in (
        ("exploration", explore),
        ("training", [x or 0.0 for x in train]),
        ("evaluation", [x or 0.0 for x in evaluate]),
        ("not split (training + evaluation, or unattributed)", rest),
    ):
        if any(y > 0.0 for y in ys) or name == "exploration":
            fig.add_trace(
                go.Bar(
                    x=names,
                    y=ys,
                    name=name,
                    hovertemplate="%{x}<br>%{y:.4g} J<extra>" + name + "</extra>",
                )
            )
    fig.update_layout(
        barmode="stack",
        title=f"SM²: total energy per trial, by phase<br><sup>{label}</sup>",
        xaxis_title="trial",
        yaxis_title=f"energy, J ({label})",
    )
    return fig


def _score_figure(scores: Sequence[RungScore], alpha: float, beta: float) -> go.Figure:
    x = [[f"rung {s.rung}" for s in scores], [f"#{s.trial}" for s in scores]]
    fig = go.Figure()
    for name, title in (
        ("performance", "α·P (performance)"),
        ("energy", "(1-α)·β·E (energy per epoch)"),
        ("lr", "(1-α)·(1-β)·LR (stable learning rate)"),
    ):
        fig.add_trace(
            go.Bar(
                x=x,
                y=[s.parts[name] for s in scores],
                name=title,
                customdata=[
                    "left out at this rung: " + ", ".join(s.left_out) if s.left_out else ""
                    for s in scores
                ],
                hovertemplate="%{x}<br>%{y:.3f}<br>%{customdata}<extra>" + title + "</extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[s.score for s in scores],
            mode="markers",
            name="score (decision)",
            marker={
                "symbol": ["x" if s.decision == "pruned" else "circle" for s in scores],
                "size": 9,
                "color": "black",
            },
            text=[f"{s.decision}, {s.competitors} competitors" for s in scores],
            hovertemplate="%{x}<br>score %{y:.3f}<br>%{text}<extra></extra>",
        )
    )
    fig.update_layout(
        barmode="stack",
        title=(
            f"SM²: Eq. 2 score per rung, α={alpha:g}, β={beta:g}<br><sup>α, β given to the "
            "dashboard (the study does not store the pruner's)</sup>"
        ),
        xaxis_title="rung, trial",
        yaxis_title="score (1 is best), split into its weighted terms",
    )
    return fig


def _cumulative_figure(
    summary: StudyReport, trials: Mapping[int, FrozenTrial], label: str
) -> go.Figure:
    timed = []
    for t in summary.trials:
        frozen = trials[t.number]
        when = frozen.datetime_complete or frozen.datetime_start
        if when is not None and t.energy_total_j is not None:
            timed.append((when, t))
    timed.sort(key=lambda p: (p[0], p[1].number))
    cumulative, total = [], 0.0
    for _, t in timed:
        total += t.energy_total_j or 0.0
        cumulative.append(total)
    fig = go.Figure(
        go.Scatter(
            x=[when.isoformat() for when, _ in timed],
            y=cumulative,
            mode="lines+markers",
            line={"shape": "hv"},
            name="cumulative energy",
            text=[f"{_trial_label(t)} {t.state.lower()}" for _, t in timed],
            customdata=[c / J_PER_WH for c in cumulative],
            hovertemplate="%{x}<br>%{text}<br>%{y:.4g} J (%{customdata:.4g} Wh)<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"SM²: cumulative study energy over time<br><sup>{label}</sup>",
        xaxis_title="trial finished (started, while running)",
        yaxis_title=f"cumulative energy, J ({label})",
    )
    return fig


def build_figures(
    study: optuna.Study,
    *,
    alpha: float = 0.75,
    beta: float = 0.5,
    lr_scale: LRScale = "log",
) -> dict[str, go.Figure]:
    """The SM² figures of ``study``, keyed by their graph-object id (:data:`FIGURE_IDS`).

    - ``sm2-energy-vs-performance``: each trial's energy per epoch against its last reported
      value, marked by state, with the Pareto front (lower energy, better value in the study's
      direction) over all trials shown;
    - ``sm2-energy-per-trial``: each trial's ``sm2.energy_total_j`` stacked by phase:
      exploration, training, evaluation, and what the trial did not split;
    - ``sm2-rung-scores``: at every rung, each competitor's Eq. 2 score stacked as α·P,
      (1-α)·β·E and (1-α)·(1-β)·LR (see :func:`rung_scores`), with its decision;
    - ``sm2-cumulative-energy``: the running sum of ``sm2.energy_total_j`` over the trials
      ordered by completion (start, for unfinished trials).

    Every energy axis and title names the energy source and whether it is an estimate.

    Raises:
        ValueError: the study holds no SM² data, is multi-objective, or ``alpha``, ``beta`` or
            ``lr_scale`` is invalid.
    """
    scores = rung_scores(study, alpha=alpha, beta=beta, lr_scale=lr_scale)
    return _figures(study, summarize_study(study), scores, alpha, beta)


def _figures(
    study: optuna.Study,
    summary: StudyReport,
    scores: Sequence[RungScore],
    alpha: float,
    beta: float,
) -> dict[str, go.Figure]:
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    label = source_label(summary.energy_sources)
    maximize = _direction(study) == StudyDirection.MAXIMIZE
    return {
        FIGURE_IDS["pareto"]: _pareto_figure(summary, _metric_name(study), maximize, label),
        FIGURE_IDS["energy_split"]: _energy_split_figure(summary, trials, label),
        FIGURE_IDS["score"]: _score_figure(scores, alpha, beta),
        FIGURE_IDS["cumulative"]: _cumulative_figure(summary, trials, label),
    }


def _fmt(x: Any, spec: str = ".4g") -> str:
    value = _number(x)
    return "-" if value is None else format(value, spec)


def _count(x: int | None) -> str:
    return "-" if x is None else str(x)


def _trial_note(trial: FrozenTrial, summary: TrialSummary, scores: Sequence[RungScore]) -> str:
    """The SM² part of ``trial``'s note (Markdown): energy and its source, chosen LR and window,
    and each rung's score and decision. Starts with :data:`NOTE_HEADING`."""
    attrs = trial.user_attrs
    source = summary.energy_source
    window = attrs.get(LR_WINDOW)
    window_text = (
        f"[{_fmt(window[0])}, {_fmt(window[1])}]"
        if isinstance(window, Sequence) and not isinstance(window, str) and len(window) == 2
        else "-"
    )
    lines = [
        NOTE_HEADING,
        "",
        f"- energy source: {source_label([source] if source else [])}",
        f"- energy total: {_fmt(summary.energy_total_j)} J (exploration "
        f"{_fmt(summary.energy_explore_j)} J, training {_fmt(attrs.get(ENERGY_TRAIN_J))} J, "
        f"evaluation {_fmt(attrs.get(ENERGY_EVAL_J))} J)",
        f"- energy per epoch: {_fmt(summary.energy_per_epoch_j)} J",
        f"- chosen learning rate: {_fmt(summary.stable_lr)}, window {window_text}, "
        f"diverged at {_fmt(attrs.get(LR_DIVERGED_AT))}",
        f"- epochs trained: {_count(summary.epochs_trained)}, "
        f"explorations: {_count(summary.explorations)}",
    ]
    resumed = _number(attrs.get(RESUMED_FROM))
    if resumed is not None:
        lines.append(f"- resumed from trial {int(resumed)}")
    own = [s for s in scores if s.trial == trial.number]
    if not own:
        lines.append("- rung decisions: none (reached no rung)")
    else:
        lines.append("- rung decisions:")
        for s in own:
            left_out = f"; {', '.join(s.left_out)} left out" if s.left_out else ""
            lines.append(
                f"  - rung {s.rung}: value {_fmt(s.record.value)}, score {s.score:.3f} "
                f"(α·P {s.parts['performance']:.3f}, (1-α)·β·E {s.parts['energy']:.3f}, "
                f"(1-α)·(1-β)·LR {s.parts['lr']:.3f}{left_out}) among {s.competitors}: "
                f"{s.decision}"
            )
    return "\n".join(lines) + "\n"


def _merge_note(existing: str, ours: str) -> str:
    """``existing`` with its SM² part (from :data:`NOTE_HEADING` on) replaced by ``ours``."""
    index = existing.find(NOTE_HEADING)
    kept = existing if index < 0 else existing[:index]
    kept = kept.rstrip()
    return f"{kept}\n\n{ours}" if kept else ours


def attach_to_dashboard(
    study: optuna.Study,
    *,
    alpha: float = 0.75,
    beta: float = 0.5,
    lr_scale: LRScale = "log",
) -> AttachResult:
    """Save the SM² figures, trial notes and metric name of ``study`` for optuna-dashboard.

    Figures (:func:`build_figures`) go through ``optuna_dashboard.save_plotly_graph_object``
    with the fixed ids of :data:`FIGURE_IDS`, which overwrites the previous version, so
    attaching again never duplicates them. Each trial's note gets an SM² part
    (:func:`_trial_note`) through ``optuna_dashboard.save_note``; text the user wrote above
    :data:`NOTE_HEADING` is kept, and a note whose content would not change is not rewritten.
    The metric name becomes ``sm2.schedule["metric_name"]`` when the study stores one. All of it
    is JSON in the study's system attributes; nothing is pickled.

    Raises:
        ValueError: as :func:`build_figures`.
    """
    import optuna_dashboard

    scores = rung_scores(study, alpha=alpha, beta=beta, lr_scale=lr_scale)
    summary = summarize_study(study)
    figures = _figures(study, summary, scores, alpha, beta)
    for graph_id, figure in figures.items():
        optuna_dashboard.save_plotly_graph_object(study, figure, graph_object_id=graph_id)

    schedule = study.user_attrs.get(SCHEDULE)
    metric = schedule.get("metric_name") if isinstance(schedule, Mapping) else None
    if isinstance(metric, str) and metric and study.metric_names != [metric]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([metric])

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    # A Trial handle is what save_note takes; a random sampler makes opening one side-effect free.
    view = optuna.load_study(
        study_name=study.study_name,
        storage=_compat.storage_of(study),
        sampler=optuna.samplers.RandomSampler(),
    )
    written: list[int] = []
    for t in summary.trials:
        frozen = trials[t.number]
        handle = _compat.trial_handle(view, frozen)
        existing = optuna_dashboard.get_note(handle)
        note = _merge_note(existing, _trial_note(frozen, t, scores))
        if note != existing:
            optuna_dashboard.save_note(handle, note)
            written.append(t.number)
    return AttachResult(figure_ids=tuple(figures), notes_written=tuple(written))
