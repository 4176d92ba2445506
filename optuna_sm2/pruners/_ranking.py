"""The ranking rule of one rung: who is promoted, and why. Pure: no Optuna, no torch.

The pruner decides with :func:`rank_rung`; the study summary, the report and the dashboard
explain its decisions with the same function, so that a change to how a rung is ranked is made
here and nowhere else. Each record carries what a ranking may need beyond Eq. 2 (the spread of
its energy figure), so that a rule robust to outliers and noise changes :func:`rank_rung`'s steps
(which components count, how they are scored, the order) and nothing else; the paper's plain
Eq. 2 stays :func:`optuna_sm2.weighted_objective`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from optuna_sm2._validation import check_int, check_unit_interval
from optuna_sm2.pruners._records import RungRecord
from optuna_sm2.pruners._weighted_objective import (
    COMPONENTS,
    Direction,
    LRScale,
    component_weights,
    eq2,
)

_ATTRIBUTES = {"energy": "energy_per_epoch_j", "lr": "stable_lr"}
"""The record field behind each cost component of Eq. 2."""


@dataclass(frozen=True)
class RankedRecord:
    """One competitor's standing at a rung.

    Attributes:
        record: What the competitor was ranked with.
        score: Its Eq. 2 score in [0, 1] (1 best; 0 for a non-finite value).
        terms: The weighted term of each component of :data:`COMPONENTS`; they sum to
            ``score`` up to rounding (0 for a component left out).
        tie_break: The value oriented so that larger is better (``-inf`` when not finite):
            equal scores are ordered by it.
        rank: 1 for the best; competitors with equal score and tie-break share a rank.
        promoted: Whether the rule promotes it to the next rung.
    """

    record: RungRecord
    score: float
    terms: Mapping[str, float]
    tie_break: float
    rank: int
    promoted: bool

    @property
    def trial(self) -> int:
        return self.record.trial


@dataclass(frozen=True, eq=False)
class RungRanking:
    """A rung's competitors ranked by :func:`rank_rung`, in the order they were given.

    Attributes:
        records: The competitors.
        scores: Each competitor's Eq. 2 score in [0, 1] (1 best; 0 for a non-finite value).
        terms: Per component of :data:`COMPONENTS`, each competitor's weighted term; a
            competitor's terms sum to its score up to rounding (0 for a component left out).
        tie_breaks: Each value oriented so that larger is better (``-inf`` when not finite):
            equal scores are ordered by it.
        promoted_mask: Whether the rule promotes each competitor to the next rung.
        weights: The renormalized weight (summing to 1) of each component that entered the
            scores.
        left_out: Each component with a non-zero weight that some competitor lacks, with the
            trials lacking it; such a component is left out for every competitor.
        promote_count: ``k = max(n // reduction_factor, 1)``: a competitor is promoted when it
            ranks at least as well as the k-th best.
        bootstrapping: ``n <= bootstrap_count``: too few competitors, nobody is promoted yet.
    """

    records: tuple[RungRecord, ...]
    scores: npt.NDArray[np.float64]
    terms: Mapping[str, npt.NDArray[np.float64]]
    tie_breaks: npt.NDArray[np.float64]
    promoted_mask: npt.NDArray[np.bool_]
    weights: Mapping[str, float]
    left_out: Mapping[str, tuple[int, ...]]
    promote_count: int
    bootstrapping: bool

    @property
    def promoted(self) -> tuple[int, ...]:
        """Numbers of the promoted trials, in the order of :attr:`records`."""
        return tuple(r.trial for r, p in zip(self.records, self.promoted_mask, strict=True) if p)

    @cached_property
    def ranks(self) -> npt.NDArray[np.int64]:
        """Each competitor's rank: 1 + how many rank strictly better (equal keys share one)."""
        keys = list(zip(self.scores.tolist(), self.tie_breaks.tolist(), strict=True))
        ascending = sorted(keys)
        return np.array([len(keys) - bisect.bisect_right(ascending, k) + 1 for k in keys])

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
            )
            for i, record in enumerate(self.records)
        )


def _components(
    records: Sequence[RungRecord], alpha: float, beta: float
) -> tuple[dict[str, list[float] | None], dict[str, tuple[int, ...]]]:
    """Step 1 of :func:`rank_rung`: each cost component's column over the records, or
    ``None`` when its weight is 0 or some record lacks it; and the components left out for a
    lack, with the trials lacking them."""
    weights = dict(zip(COMPONENTS, component_weights(alpha, beta), strict=True))
    columns: dict[str, list[float] | None] = {}
    left_out: dict[str, tuple[int, ...]] = {}
    for component, field in _ATTRIBUTES.items():
        column = [getattr(r, field) for r in records]
        missing = tuple(r.trial for r, x in zip(records, column, strict=True) if x is None)
        if weights[component] == 0.0 or missing:
            columns[component] = None
            if missing and weights[component] != 0.0:
                left_out[component] = missing
        else:
            columns[component] = [float(x) for x in column if x is not None]
    return columns, left_out


def rank_rung(
    records: Sequence[RungRecord],
    *,
    direction: Direction,
    alpha: float = 0.75,
    beta: float = 0.5,
    lr_scale: LRScale = "log",
    reduction_factor: int = 2,
    bootstrap_count: int = 0,
) -> RungRanking:
    """Rank one rung's competitors by SM²'s Eq. 2 and promote the best ``1/reduction_factor``.

    1. **Components.** Performance always counts. Energy per epoch and the stable learning
       rate count when their weight (:func:`component_weights`) is not 0 and every
       competitor has them; a component some competitor lacks is left out for all, and the
       remaining weights are renormalized to sum 1 (performance alone when nothing else is
       left).
    2. **Scores.** :func:`optuna_sm2.weighted_objective` over the records: each attribute
       min-max rescaled over the competitors, 1 best, weighted, summed. A NaN or infinite
       value scores 0 and stays out of the others' rescaling.
    3. **Order.** By ``(score, value oriented so that larger is better)``: equal scores are
       ordered by performance, which makes ``alpha=1`` order exactly as the values do.
    4. **Promotion.** With ``n`` competitors, nobody while ``n <= bootstrap_count``;
       otherwise ``k = max(n // reduction_factor, 1)`` and every competitor that ranks at
       least as well as the k-th best is promoted (Optuna's rule; ties at the threshold all
       go through), except one whose value is not finite.

    Args:
        records: The competitors, one record per trial, in any order (at least one).
        direction: The study's direction, ``"maximize"`` or ``"minimize"``.
        alpha: Weight of performance against the cost terms, in [0, 1].
        beta: Weight of energy against learning rate within the cost terms, in [0, 1].
        lr_scale: ``"log"`` or ``"linear"``, how learning rates are compared.
        reduction_factor: About ``1 / reduction_factor`` of the competitors are promoted
            (an integer >= 2).
        bootstrap_count: Nobody is promoted while there are at most this many competitors.

    Raises:
        ValueError: an argument out of its range (named), or no records.

    Example:
        >>> from optuna_sm2.pruners import RungRecord, rank_rung
        >>> ranking = rank_rung(
        ...     [RungRecord(0, 0.90, 300.0, 0.1), RungRecord(1, 0.88, 100.0, 0.1)],
        ...     direction="maximize", alpha=0.4, beta=1.0,
        ... )
        >>> ranking.promoted, [round(e.score, 3) for e in ranking.entries]
        ((1,), [0.4, 0.6])
        >>> ranking.entry(1).terms["energy"], ranking.entry(1).rank
        (0.6, 1)
    """
    alpha = check_unit_interval("alpha", alpha)
    beta = check_unit_interval("beta", beta)
    reduction_factor = check_int("reduction_factor", reduction_factor, minimum=2)
    bootstrap_count = check_int("bootstrap_count", bootstrap_count, minimum=0)
    if not records:
        raise ValueError("`records` is empty: a rung needs at least one competitor.")
    columns, left_out = _components(records, alpha, beta)
    values = np.array([r.value for r in records], dtype=np.float64)
    scored = eq2(values, columns["energy"], columns["lr"], alpha, beta, direction, lr_scale)
    finite = np.isfinite(values)
    tie_breaks = np.where(finite, values if direction == "maximize" else -values, -np.inf)
    n = len(records)
    promote_count = max(n // reduction_factor, 1)
    bootstrapping = n <= bootstrap_count
    # Best first by (score, tie-break); the k-th best key is the threshold.
    order = np.lexsort((-tie_breaks, -scored.score))
    kth = order[promote_count - 1]
    score_k, tie_k = scored.score[kth], tie_breaks[kth]
    at_least_kth = (scored.score > score_k) | ((scored.score == score_k) & (tie_breaks >= tie_k))
    return RungRanking(
        records=tuple(records),
        scores=scored.score,
        terms=scored.terms,
        tie_breaks=tie_breaks,
        promoted_mask=at_least_kth & finite & (not bootstrapping),
        weights=dict(scored.weights),
        left_out=left_out,
        promote_count=promote_count,
        bootstrapping=bootstrapping,
    )
