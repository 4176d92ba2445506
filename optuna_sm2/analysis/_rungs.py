"""Every rung of a study with the pruner's decisions as it stored them, and what happened
afterwards."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from optuna.trial import TrialState

from optuna_sm2.attrs import ENERGY_PER_EPOCH_J, STABLE_LR
from optuna_sm2.pruners import PrunerSettings, RungDecision, RungRanking, RungRecord

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

Outcome = Literal["went on", "complete", "pruned", "failed", "running"]

_REPORTED_AS = {
    "energy": f"an energy per epoch ({ENERGY_PER_EPOCH_J})",
    "lr": f"a stable LR ({STABLE_LR}; its training loop chooses the LR)",
}
"""What a trial reports for each cost component of Eq. 2, in words."""


@dataclass(frozen=True)
class RungEntry:
    """One competitor at a rung: what it was ranked with, what the pruner decided for it, and
    what it did next.

    Attributes:
        record: What it was ranked with (its own record at the rung).
        decision: The pruner's decision: the one stored in the record when the pruner decided
            (``stored``), else the rung's records ranked now (``stored`` is ``False``: a record
            written without deciding, as the synchronous schedule writes them, where this *is*
            its decision; or by an optuna-sm2 version that did not store decisions).
        stored: Whether :attr:`decision` is the one stored when the pruner decided.
        outcome: ``went on`` (holds the next rung's record), ``complete``, ``pruned``,
            ``failed`` or ``running`` (its state, having gone no further).
        bootstrapping: Whether there were too few competitors to promote any
            (``bootstrap_count``).
    """

    record: RungRecord
    decision: RungDecision
    stored: bool
    outcome: Outcome
    bootstrapping: bool = False

    @property
    def trial(self) -> int:
        return self.record.trial

    @property
    def promoted(self) -> bool:
        return self.decision.promoted

    @property
    def verdict(self) -> str:
        """``promoted`` or ``pruned``."""
        return "promoted" if self.decision.promoted else "pruned"

    @property
    def basis(self) -> str:
        """Against whom it was ranked, in words: ``rank 2 of 5 when it arrived`` (stored) or
        ``rank 2 of 5, ranked now`` (not stored)."""
        d = self.decision
        when = "when it arrived" if self.stored else "ranked now"
        return f"rank {d.rank} of {d.competitors} {when}"

    def explanation(self) -> str | None:
        """Why the decision and what the trial did next disagree, in words; ``None`` when they
        agree (promoted and went on or completed, pruned and pruned, ...)."""
        went_on = self.outcome in ("went on", "complete")
        if self.promoted or not went_on:
            return None
        if self.stored:
            return (
                f"trial {self.trial} was told to prune here but {self.outcome}, because its "
                "objective did not stop when should_prune() said so"
            )
        return (
            f"trial {self.trial} ranks among the pruned now but {self.outcome}, because this "
            "rung holds no stored decision and is ranked now against every trial that reached "
            "it, while asynchronous halving (Optuna's rule, study.optimize) decided it when it "
            "arrived, against only the trials that had reached the rung before it, and "
            "promoted it"
        )


@dataclass(frozen=True, eq=False)
class RungSummary:
    """One rung of a study: each competitor with the pruner's decision, and what it did next.

    An asynchronous study (``study.optimize``) decides each trial when it arrives at the rung,
    among the competitors present then: the pruner stores that decision in the trial's record
    (:class:`~optuna_sm2.pruners.RungDecision`), and :attr:`entries` show it. Records that
    hold none (the synchronous schedule, which records every configuration and then ranks
    them all together; records of older versions) are ranked now, with the study's pruner
    settings, over every trial that holds its own record for the rung: :attr:`ranking`.

    Attributes:
        rung: The rung's index (0 first).
        step: The step at which the rung is reached, when the settings tell it.
        entries: The competitors in trial order, each with its decision and outcome.
        ranking: The rung's records ranked now (``ranking.records`` in trial order): the
            decision of the records that store none, and the weights of the heading.
        outcomes: Per trial number, what it did next (as in :attr:`entries`).
    """

    rung: int
    step: int | None
    entries: tuple[RungEntry, ...]
    ranking: RungRanking
    outcomes: Mapping[int, Outcome]

    @property
    def all_stored(self) -> bool:
        """Whether every decision at the rung is the one stored when the pruner decided."""
        return all(e.stored for e in self.entries)

    def entry(self, trial: int) -> RungEntry:
        """Trial number ``trial``'s entry; ``KeyError`` when it does not compete here."""
        for e in self.entries:
            if e.trial == trial:
                return e
        raise KeyError(trial)

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
                    "score": e.decision.score,
                    "terms": dict(e.decision.terms),
                    "rank": e.decision.rank,
                    "competitors": e.decision.competitors,
                    "promote_count": e.decision.promote_count,
                    "promoted": e.promoted,
                    "decision": "stored" if e.stored else "ranked now",
                    "outcome": e.outcome,
                    "explanation": e.explanation(),
                }
                for e in self.entries
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
    """Every rung some trial holds its own record for, with its decisions; ``held`` maps each
    trial number to its own records (as :func:`optuna_sm2.pruners.read_records` reads them)."""
    by_number = {t.number: t for t in trials}
    rungs = sorted({r for records in held.values() for r in records})
    summaries = []
    for rung in rungs:
        numbers = sorted(n for n in held if rung in held[n])
        records = [held[n][rung] for n in numbers]
        ranking = settings.rank(records, direction=direction)
        outcomes = {n: _outcome(by_number[n], rung, held[n]) for n in numbers}
        entries = tuple(
            RungEntry(
                record=record,
                decision=record.decision or RungDecision.at(ranking, i),
                stored=record.decision is not None,
                outcome=outcomes[record.trial],
                bootstrapping=(
                    ranking.bootstrapping
                    if record.decision is None
                    else record.decision.competitors <= settings.bootstrap_count
                ),
            )
            for i, record in enumerate(records)
        )
        summaries.append(
            RungSummary(
                rung=rung,
                step=rung_step(settings, rung, schedule_steps),
                entries=entries,
                ranking=ranking,
                outcomes=outcomes,
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
