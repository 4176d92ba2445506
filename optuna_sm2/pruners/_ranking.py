"""The ranking rule of one rung: who is promoted, and why. Pure: no Optuna, no torch.

The pruner decides with :func:`rank_rung`; the study summary, the report and the dashboard
explain its decisions with the same function, so that a change to how a rung is ranked is made
here and nowhere else. Two rules share it: ``"robust"`` (the default: diverged values, noise
and cost-driven promotions over clearly better performers are handled by the steps of
:mod:`optuna_sm2.pruners._robust`) and ``"paper"``, the plain Eq. 2 of
:func:`optuna_sm2.weighted_objective`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt

from optuna_sm2._validation import check_choice, check_int, check_real, check_unit_interval
from optuna_sm2.pruners import _robust
from optuna_sm2.pruners._columns import RungColumns
from optuna_sm2.pruners._records import RungRecord
from optuna_sm2.pruners._weighted_objective import (
    COMPONENTS,
    DIRECTIONS,
    Direction,
    LRScale,
    component_weights,
    eq2,
)

Ranking = Literal["robust", "paper"]
RANKINGS: tuple[Ranking, ...] = ("robust", "paper")

PERFORMANCE_TOLERANCE = 0.02
"""Default ``performance_tolerance`` of the robust rule (chosen with
``benchmarks/ranking_robustness.py``; see ``docs/pruner.md``)."""


@dataclass(frozen=True)
class RankedRecord:
    """One competitor's standing at a rung.

    Attributes:
        record: What the competitor was ranked with.
        score: Its Eq. 2 score in [0, 1] (1 best; 0 for a non-finite or diverged value).
        terms: The weighted term of each component of :data:`COMPONENTS`; they sum to
            ``score`` up to rounding (0 for a component left out).
        tie_break: The value oriented so that larger is better (``-inf`` when not finite):
            equal scores are ordered by it.
        rank: 1 for the best; competitors with equal score and tie-break share a rank.
        promoted: Whether the rule promotes it to the next rung.
        diverged: Whether its value is diverged (robust rule): it ranks after every
            competitor that is not, and stays out of their rescaling.
    """

    record: RungRecord
    score: float
    terms: Mapping[str, float]
    tie_break: float
    rank: int
    promoted: bool
    diverged: bool = False

    @property
    def trial(self) -> int:
        return self.record.trial


@dataclass(frozen=True, eq=False)
class RungRanking:
    """A rung's competitors ranked by :func:`rank_rung`, in the order they were given.

    Attributes:
        records: The competitors.
        scores: Each competitor's Eq. 2 score in [0, 1] (1 best; 0 for a non-finite or
            diverged value).
        terms: Per component of :data:`COMPONENTS`, each competitor's weighted term; a
            competitor's terms sum to its score up to rounding (0 for a component left out).
        tie_breaks: Each value oriented so that larger is better (``-inf`` when not finite):
            equal scores are ordered by it.
        ranks: Each competitor's rank, 1 for the best; competitors with equal score and
            tie-break share one (1 + how many rank ahead with another score or tie-break).
        promoted_mask: Whether the rule promotes each competitor to the next rung.
        diverged_mask: Whether each value is diverged (always ``False`` with ``"paper"``).
        weights: The renormalized weight (summing to 1) of each component that entered the
            scores.
        left_out: Each component with a non-zero weight that some competitor lacks, with the
            trials lacking it; such a component is left out for every competitor. See
            :attr:`unreported` for those that no competitor reports.
        promote_count: ``k = max(n // reduction_factor, 1)``: a competitor is promoted when it
            ranks at least as well as the k-th best.
        bootstrapping: ``n <= bootstrap_count``: too few competitors, nobody is promoted yet.
        rule: ``"robust"`` or ``"paper"``, the rule that ranked the rung.
        performance_tolerance: The robust rule's tolerance (not used by ``"paper"``).
    """

    records: tuple[RungRecord, ...]
    scores: npt.NDArray[np.float64]
    terms: Mapping[str, npt.NDArray[np.float64]]
    tie_breaks: npt.NDArray[np.float64]
    ranks: npt.NDArray[np.int64]
    promoted_mask: npt.NDArray[np.bool_]
    diverged_mask: npt.NDArray[np.bool_]
    weights: Mapping[str, float]
    left_out: Mapping[str, tuple[int, ...]]
    promote_count: int
    bootstrapping: bool
    rule: Ranking = "robust"
    performance_tolerance: float = PERFORMANCE_TOLERANCE

    @property
    def promoted(self) -> tuple[int, ...]:
        """Numbers of the promoted trials, in the order of :attr:`records`."""
        return tuple(r.trial for r, p in zip(self.records, self.promoted_mask, strict=True) if p)

    @property
    def unreported(self) -> tuple[str, ...]:
        """The components of :attr:`left_out` that no competitor reports (diverged ones
        aside): left out by how the trials were run (a loop that searches the LR itself has no
        stable LR to report), rather than missing from some trial by mistake."""
        counted = len(self.records) - int(self.diverged_mask.sum())
        return tuple(name for name, lacking in self.left_out.items() if len(lacking) == counted)

    @property
    def diverged(self) -> tuple[int, ...]:
        """Numbers of the trials whose value is diverged, in the order of :attr:`records`."""
        return tuple(r.trial for r, d in zip(self.records, self.diverged_mask, strict=True) if d)

    @cached_property
    def _index(self) -> dict[int, int]:
        return {r.trial: i for i, r in enumerate(self.records)}

    def is_promoted(self, trial: int) -> bool:
        """Whether trial number ``trial`` is promoted; ``KeyError`` when it does not compete."""
        return bool(self.promoted_mask[self._index[trial]])

    def entry(self, trial: int) -> RankedRecord:
        """The standing of trial number ``trial``; ``KeyError`` when it does not compete."""
        return self.entries[self._index[trial]]

    @cached_property
    def entries(self) -> tuple[RankedRecord, ...]:
        """One :class:`RankedRecord` per competitor, in the order of :attr:`records`."""
        return tuple(
            RankedRecord(
                record=record,
                score=float(self.scores[i]),
                terms={name: float(self.terms[name][i]) for name in COMPONENTS},
                tie_break=float(self.tie_breaks[i]),
                rank=int(self.ranks[i]),
                promoted=bool(self.promoted_mask[i]),
                diverged=bool(self.diverged_mask[i]),
            )
            for i, record in enumerate(self.records)
        )


def _components(
    trials: npt.NDArray[np.int64],
    figures: Mapping[str, npt.NDArray[np.float64]],
    alpha: float,
    beta: float,
) -> tuple[dict[str, npt.NDArray[np.float64] | None], dict[str, tuple[int, ...]]]:
    """Step 2 of :func:`rank_rung`: of each cost component's column over the competitors
    (``trials``; NaN where unknown), the column, or ``None`` when its weight is 0 or some
    competitor lacks it; and the components left out for a lack, with the trials lacking
    them."""
    weights = dict(zip(COMPONENTS, component_weights(alpha, beta), strict=True))
    used: dict[str, npt.NDArray[np.float64] | None] = {}
    left_out: dict[str, tuple[int, ...]] = {}
    for component, column in figures.items():
        used[component] = None
        if weights[component] == 0.0:
            continue  # not read: alpha=1 ranks by performance alone
        missing = np.isnan(column)
        if missing.any():
            left_out[component] = tuple(trials[missing].tolist())
        else:
            used[component] = column
    return used, left_out


def _ranks_and_promotion(
    order: Sequence[int],
    scores: npt.NDArray[np.float64],
    tie_breaks: npt.NDArray[np.float64],
    promote_count: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Step 5 of :func:`rank_rung`: ranks from the order (a place whose key, ``(score,
    tie-break)``, equals the previous place's shares its rank), and who is placed among the
    first k or has the k-th placed's key."""
    placed = np.asarray(order, dtype=np.int64)
    s, t = scores[placed], tie_breaks[placed]
    n = len(placed)
    new_key = np.ones(n, dtype=np.bool_)
    new_key[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    ranks = np.empty(n, dtype=np.int64)
    ranks[placed] = np.maximum.accumulate(np.where(new_key, np.arange(n), 0)) + 1
    kth = placed[promote_count - 1]
    places = np.empty(n, dtype=np.int64)
    places[placed] = np.arange(n)
    at_least_kth = (places < promote_count) | (
        (scores == scores[kth]) & (tie_breaks == tie_breaks[kth])
    )
    return ranks, at_least_kth


def rank_rung(
    records: Sequence[RungRecord],
    *,
    direction: Direction,
    alpha: float = 0.75,
    beta: float = 0.5,
    lr_scale: LRScale = "log",
    reduction_factor: int = 2,
    bootstrap_count: int = 0,
    ranking: Ranking = "robust",
    performance_tolerance: float = PERFORMANCE_TOLERANCE,
) -> RungRanking:
    """Rank one rung's competitors by SM²'s Eq. 2 and promote the best ``1/reduction_factor``.

    1. **Diverged values** (``"robust"`` only). A finite value far worse than the others is
       *diverged* (:func:`~optuna_sm2.pruners._robust.diverged_mask`: worse than the median
       by more than 10 robust scales, the scale being at least a tenth of the median's
       magnitude). A diverged competitor scores 0, ranks after every other, and takes no part
       in the next two steps: the others are scored exactly as if it were not there.
    2. **Components.** Performance always counts. Energy per epoch and the stable learning
       rate count when their weight (:func:`component_weights`) is not 0 and every
       competitor (diverged ones aside) has them; a component some competitor lacks is left
       out for all, and the remaining weights are renormalized to sum 1 (performance alone
       when nothing else is left).
    3. **Scores.** :func:`optuna_sm2.weighted_objective` over the records: each attribute
       min-max rescaled over the competitors, 1 best, weighted, summed. A NaN or infinite
       value scores 0 and stays out of the others' rescaling. With ``"robust"``, energies
       within their combined spread and resolution (how far the meter's steps may have moved
       them, ``energy_per_epoch_resolution``) and LRs within a factor 1.5 are made equal first
       (:func:`~optuna_sm2.pruners._robust.tie_energies`,
       :func:`~optuna_sm2.pruners._robust.tie_lrs`), so that noise does not decide.
    4. **Order.** ``"paper"``: by ``(score, value oriented so that larger is better)``: equal
       scores are ordered by performance, which makes ``alpha=1`` order exactly as the values
       do. ``"robust"``: the same, except that nobody is placed ahead of a competitor whose
       value is better by more than ``performance_tolerance`` times that value's magnitude
       (:func:`~optuna_sm2.pruners._robust.protected_order`); then the diverged, then the
       non-finite values.
    5. **Promotion.** With ``n`` competitors, nobody while ``n <= bootstrap_count``;
       otherwise ``k = max(n // reduction_factor, 1)`` and every competitor that ranks at
       least as well as the k-th placed is promoted (Optuna's rule; ties at the threshold all
       go through), except one whose value is not finite.

    With ``alpha=1`` both rules order by the value alone: fewer than half of the values can be
    diverged and each is worse than every other, the cost terms weigh 0, and the protected
    order of scores that grow with the value is the order of the values.

    Args:
        records: The competitors, one record per trial, in any order (at least one).
        direction: The study's direction, ``"maximize"`` or ``"minimize"``.
        alpha: Weight of performance against the cost terms, in [0, 1].
        beta: Weight of energy against learning rate within the cost terms, in [0, 1].
        lr_scale: ``"log"`` or ``"linear"``, how learning rates are compared.
        reduction_factor: About ``1 / reduction_factor`` of the competitors are promoted
            (an integer >= 2).
        bootstrap_count: Nobody is promoted while there are at most this many competitors.
        ranking: ``"robust"`` (default) or ``"paper"`` (the plain Eq. 2).
        performance_tolerance: ``"robust"`` only: how much better, relative to its magnitude,
            a value must be to be safe from being overtaken by the cost terms, in [0, 1).

    Raises:
        ValueError: an argument out of its range (named), or no records.

    Example:
        >>> from optuna_sm2.pruners import RungRecord, rank_rung
        >>> records = [RungRecord(0, 0.90, 300.0, 0.1), RungRecord(1, 0.80, 100.0, 0.1)]
        >>> paper = rank_rung(records, direction="maximize", alpha=0.4, beta=1.0,
        ...                   ranking="paper")
        >>> paper.promoted, [round(e.score, 3) for e in paper.entries]
        ((1,), [0.4, 0.6])
        >>> robust = rank_rung(records, direction="maximize", alpha=0.4, beta=1.0)
        >>> robust.promoted, [e.rank for e in robust.entries]  # 0.10 better: over 2 % of 0.90
        ((0,), [1, 2])
        >>> robust.entry(1).terms["energy"], robust.entry(1).score  # the scores are the same
        (0.6, 0.6)
    """
    alpha = check_unit_interval("alpha", alpha)
    beta = check_unit_interval("beta", beta)
    reduction_factor = check_int("reduction_factor", reduction_factor, minimum=2)
    bootstrap_count = check_int("bootstrap_count", bootstrap_count, minimum=0)
    ranking = check_choice("ranking", ranking, RANKINGS)
    performance_tolerance = check_real(
        "performance_tolerance", performance_tolerance, low=0.0, high=1.0, high_inclusive=False
    )
    check_choice("direction", direction, DIRECTIONS)
    if not records:
        raise ValueError("`records` is empty: a rung needs at least one competitor.")
    _check_figures(records)
    return rank_checked(
        records,
        direction=direction,
        alpha=alpha,
        beta=beta,
        lr_scale=lr_scale,
        reduction_factor=reduction_factor,
        bootstrap_count=bootstrap_count,
        ranking=ranking,
        performance_tolerance=performance_tolerance,
    )


def _check_figures(records: Sequence[RungRecord]) -> None:
    """``ValueError`` for a record whose energy is not finite and >= 0 or whose LR is not
    finite and > 0 (a record built by hand; stored ones read such figures as unknown)."""
    for r in records:
        e, lr = r.energy_per_epoch_j, r.stable_lr
        if e is not None and not (math.isfinite(e) and e >= 0):
            raise ValueError(
                f"`energies` must be finite and >= 0 (joules per epoch), got {e!r} for "
                f"trial {r.trial}."
            )
        if lr is not None and not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"`lrs` must be finite and > 0, got {lr!r} for trial {r.trial}.")


def rank_checked(
    records: Sequence[RungRecord],
    *,
    direction: Direction,
    alpha: float,
    beta: float,
    lr_scale: LRScale,
    reduction_factor: int,
    bootstrap_count: int,
    ranking: Ranking,
    performance_tolerance: float,
    columns: RungColumns | None = None,
) -> RungRanking:
    """:func:`rank_rung` over checked arguments: the private kernel each decision runs, which
    trusts them (settings in range, at least one record, figures in range). ``columns``, when
    given, are ``RungColumns.of(records)``, kept by the caller."""
    robust = ranking == "robust"
    n = len(records)
    columns = RungColumns.of(records) if columns is None else columns
    values = columns.values
    finite = np.isfinite(values)
    oriented = values if direction == "maximize" else -values
    tie_breaks = np.where(finite, oriented, -np.inf)
    diverged = _robust.diverged_mask(oriented) if robust else np.zeros(n, dtype=np.bool_)
    counted = np.flatnonzero(~diverged)
    used, left_out = _components(
        columns.trials[counted],
        {"energy": columns.energies[counted], "lr": columns.lrs[counted]},
        alpha,
        beta,
    )
    energies, lrs = used["energy"], used["lr"]
    if robust and energies is not None:
        energies = _robust.tie_energies(
            energies, columns.spreads[counted], columns.resolutions[counted]
        )
    if robust and lrs is not None:
        lrs = _robust.tie_lrs(lrs)
    scored = eq2(values[counted], energies, lrs, alpha, beta, direction, lr_scale)
    scores = np.zeros(n)
    scores[counted] = scored.score
    terms = {name: np.zeros(n) for name in COMPONENTS}
    for name in COMPONENTS:
        terms[name][counted] = scored.terms[name]
    if robust:
        ranked = np.flatnonzero(finite & ~diverged)
        protected = _robust.protected_order(
            scores[ranked], oriented[ranked], performance_tolerance
        )
        order = ranked[protected].tolist()
        tail = np.flatnonzero(~finite | diverged)
        order += tail[np.argsort(-tie_breaks[tail], kind="stable")].tolist()
    else:
        order = np.lexsort((-tie_breaks, -scores)).tolist()
    promote_count = max(n // reduction_factor, 1)
    bootstrapping = n <= bootstrap_count
    ranks, at_least_kth = _ranks_and_promotion(order, scores, tie_breaks, promote_count)
    return RungRanking(
        records=tuple(records),
        scores=scores,
        terms=terms,
        tie_breaks=tie_breaks,
        ranks=ranks,
        promoted_mask=at_least_kth & finite & (not bootstrapping),
        diverged_mask=diverged,
        weights=dict(scored.weights),
        left_out=left_out,
        promote_count=promote_count,
        bootstrapping=bootstrapping,
        rule=ranking,
        performance_tolerance=performance_tolerance,
    )
