"""Every rung of a study ranked with the pruner's own rule, and what happened afterwards."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from optuna.trial import TrialState

from optuna_sm2.attrs import ENERGY_PER_EPOCH_J, STABLE_LR
from optuna_sm2.pruners import PrunerSettings, RungRanking, RungRecord

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

Outcome = Literal["went on", "complete", "pruned", "failed", "running"]

_REPORTED_AS = {
    "energy": f"an energy per epoch ({ENERGY_PER_EPOCH_J})",
    "lr": f"a stable LR ({STABLE_LR}; its training loop chooses the LR)",
}
"""What a trial reports for each cost component of Eq. 2, in words."""


@dataclass(frozen=True, eq=False)
class RungSummary:
    """One rung of a study: its competitors ranked by :func:`optuna_sm2.pruners.rank_rung`
    with the study's pruner settings, and what each competitor did next.

    The ranking is over every trial holding its own record for the rung now, which is what the
    pruner's ``is_promoted`` decides with (and, for the synchronous schedule, what it decided
    with). An asynchronous study decided each trial when it arrived, among the competitors
    present then; :attr:`outcomes` says what actually happened to each.

    Attributes:
        rung: The rung's index (0 first).
        step: The step at which the rung is reached, when the settings tell it.
        ranking: The ranking; ``ranking.records`` are in trial order.
        outcomes: Per trial number: ``went on`` (holds the next rung's record), ``complete``,
            ``pruned``, ``failed`` or ``running`` (its state, having gone no further).
    """

    rung: int
    step: int | None
    ranking: RungRanking
    outcomes: Mapping[int, Outcome]

    def to_json(self) -> dict[str, Any]:
        """The rung as JSON values (a non-finite value becomes ``None``)."""
        ranking = self.ranking
        return {
            "rung": self.rung,
            "step": self.step,
            "competitors": len(ranking.records),
            "promote_count": ranking.promote_count,
            "bootstrapping": ranking.bootstrapping,
            "weights": dict(ranking.weights),
            "left_out": {name: list(trials) for name, trials in ranking.left_out.items()},
            "unreported": list(ranking.unreported),
            "entries": [
                {
                    "trial": e.trial,
                    "value": e.record.value if math.isfinite(e.record.value) else None,
                    "energy_per_epoch_j": e.record.energy_per_epoch_j,
                    "energy_per_epoch_spread": e.record.energy_per_epoch_spread,
                    "stable_lr": e.record.stable_lr,
                    "score": e.score,
                    "terms": dict(e.terms),
                    "rank": e.rank,
                    "promoted": e.promoted,
                    "outcome": self.outcomes[e.trial],
                }
                for e in ranking.entries
            ],
        }


def rung_step(
    settings: PrunerSettings, rung: int, schedule_steps: Sequence[int] | None
) -> int | None:
    """The step of ``rung`` under ``settings``; the study's ``sm2.schedule`` steps when the
    settings have neither explicit steps nor an integer ``min_resource``."""
    steps = settings.rung_steps if settings.rung_steps is not None else schedule_steps
    if steps is not None:
        return steps[rung] if rung < len(steps) else None
    if settings.min_resource == "auto":
        return None
    return int(
        settings.min_resource
        * settings.reduction_factor ** (settings.min_early_stopping_rate + rung)
    )


def _outcome(trial: FrozenTrial, rung: int, held: Mapping[int, RungRecord]) -> Outcome:
    if rung + 1 in held:
        return "went on"
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        return "pruned"
    if trial.state == TrialState.FAIL:
        return "failed"
    return "running"


def summarize_rungs(
    trials: Sequence[FrozenTrial],
    held: Mapping[int, Mapping[int, RungRecord]],
    settings: PrunerSettings,
    direction: Literal["maximize", "minimize"],
    schedule_steps: Sequence[int] | None = None,
) -> tuple[RungSummary, ...]:
    """Every rung some trial holds its own record for, ranked; ``held`` maps each trial number
    to its own records (as :func:`optuna_sm2.pruners.read_records` reads them)."""
    by_number = {t.number: t for t in trials}
    rungs = sorted({r for records in held.values() for r in records})
    summaries = []
    for rung in rungs:
        numbers = sorted(n for n in held if rung in held[n])
        ranking = settings.rank([held[n][rung] for n in numbers], direction=direction)
        summaries.append(
            RungSummary(
                rung=rung,
                step=rung_step(settings, rung, schedule_steps),
                ranking=ranking,
                outcomes={n: _outcome(by_number[n], rung, held[n]) for n in numbers},
            )
        )
    return tuple(summaries)


def unreported_everywhere(rungs: Sequence[RungSummary]) -> tuple[str, ...]:
    """The cost components that no competitor of any rung reports (and whose weight is not
    0): the study was run without them, rather than some trial missing them."""
    if not rungs:
        return ()
    return tuple(
        name
        for name in rungs[0].ranking.unreported
        if all(name in rung.ranking.unreported for rung in rungs)
    )


def ranked_by_note(rungs: Sequence[RungSummary]) -> str | None:
    """Said once for a study: what its rungs were ranked by when a cost component is reported
    by no trial at all (``None`` otherwise)."""
    absent = unreported_everywhere(rungs)
    if not absent:
        return None
    weights = rungs[0].ranking.weights
    if any(rung.ranking.weights != weights for rung in rungs):
        by = "the components each rung's weights name"
    else:
        by = ", ".join(f"{name} {weight:.3g}" for name, weight in weights.items())
    return (
        f"no trial reports {' or '.join(_REPORTED_AS[name] for name in absent)}: every rung is "
        f"ranked by {by} (the weights renormalized to sum 1)"
    )
