"""SM²'s normalized weighted objective (Eq. 2 of arXiv 2412.08526)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from optuna_sm2._validation import check_choice, check_unit_interval, is_real

Direction = Literal["maximize", "minimize"]
LRScale = Literal["log", "linear"]

DIRECTIONS: tuple[Direction, ...] = ("maximize", "minimize")
LR_SCALES: tuple[LRScale, ...] = ("log", "linear")


def component_weights(alpha: float, beta: float) -> tuple[float, float, float]:
    """The weights of performance, energy and learning rate in Eq. 2."""
    return alpha, (1.0 - alpha) * beta, (1.0 - alpha) * (1.0 - beta)


def _min_max_best_is_one(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Rescale ``x`` (finite) to [0, 1] with 1 for its largest entry; all equal gives all 1.

    A range wider than the largest float (values near +-1e308) is rescaled from halved
    operands, so that the result is never NaN and keeps the order of ``x``.
    """
    low, high = float(np.min(x)), float(np.max(x))
    if high == low:
        return np.ones_like(x)
    if math.isfinite(high - low):
        return np.asarray((x - low) / (high - low), dtype=np.float64)
    return np.asarray((x / 2 - low / 2) / (high / 2 - low / 2), dtype=np.float64)


def weighted_objective(
    values: Sequence[float],
    energies: Sequence[float] | None = None,
    lrs: Sequence[float] | None = None,
    *,
    alpha: float = 0.75,
    beta: float = 0.5,
    direction: Direction = "maximize",
    lr_scale: LRScale = "log",
) -> npt.NDArray[np.float64]:
    """Score one rung's competitors by SM²'s Eq. 2, higher is better.

    ``f = α·P + (1-α)·(β·E + (1-β)·LR)``, each attribute min-max rescaled to [0, 1] over the
    competitors and oriented so that 1 is best: the better performance (larger when
    ``direction="maximize"``, smaller when ``"minimize"``), the lower energy per epoch, the
    larger stable learning rate. An attribute equal for every competitor scores 1 for all.

    This is the paper's plain Eq. 2, what ``SuccessiveHalvingEnergyPruner(ranking="paper")``
    ranks with. Its min-max rescaling has two weaknesses: one diverged but finite value (a
    perplexity of 5e21 among values near 100) squeezes every other performance into ~1, so
    that the cost terms alone decide; and differences within the noise of the figures (a 5 %
    energy wobble, one LR grid step) span the whole [0, 1]. The pruner's default rule,
    ``ranking="robust"`` (:func:`optuna_sm2.pruners.rank_rung`, ``docs/pruner.md``), scores
    with the same Eq. 2 after setting diverged values apart and tying figures within their
    noise, and never lets the cost terms promote a configuration over a clearly better
    performer.

    Reference: Geißler et al., "Spend More to Save More: Energy-aware hyperparameter
    optimization", arXiv 2412.08526, Eq. 2.

    Args:
        values: Performance of each competitor. A non-finite value scores 0 overall and
            is left out of the rescaling of the others.
        energies: Energy per epoch (J) of each competitor, or ``None`` when unknown.
        lrs: Largest stable learning rate of each competitor, or ``None`` when unknown.
        alpha: Weight of performance against the cost terms, in [0, 1].
        beta: Weight of energy against learning rate within the cost terms, in [0, 1].
        direction: ``"maximize"`` or ``"minimize"``, the study's direction.
        lr_scale: ``"log"`` (default) compares learning rates by their logarithm, so that
            every decade of a 1e-3 .. 1 grid counts alike; ``"linear"`` by their value.

    A component passed as ``None`` is left out and the remaining weights are renormalized to
    sum 1; when nothing but zero weights remains, performance alone ranks.

    Example:
        .. code-block:: python

            from optuna_sm2 import weighted_objective

            scores = weighted_objective(
                [0.90, 0.91, 0.80], energies=[120.0, 300.0, 90.0], lrs=[0.1, 0.02, 0.5]
            )
            best = int(scores.argmax())
    """
    terms = weighted_components(
        values, energies, lrs, alpha=alpha, beta=beta, direction=direction, lr_scale=lr_scale
    )
    return _score(terms)


COMPONENTS = ("performance", "energy", "lr")
"""The components of Eq. 2, in the order of its terms: α·P, (1-α)·β·E and (1-α)·(1-β)·LR."""


def weighted_components(
    values: Sequence[float],
    energies: Sequence[float] | None = None,
    lrs: Sequence[float] | None = None,
    *,
    alpha: float = 0.75,
    beta: float = 0.5,
    direction: Direction = "maximize",
    lr_scale: LRScale = "log",
) -> dict[str, npt.NDArray[np.float64]]:
    """Each term of :func:`weighted_objective`'s score, per competitor.

    Same arguments and validation as :func:`weighted_objective`, which is the sum of these
    terms clipped to [0, 1]. Returns one array per name of :data:`COMPONENTS`: the component's
    normalized attribute (1 best) times its weight, the weights renormalized to sum 1. A
    component passed as ``None`` (or dropped because nothing but zero weights remained) is all
    zeros, and every term of a competitor with a non-finite value is 0.

    Example:
        >>> from optuna_sm2.pruners import weighted_components
        >>> parts = weighted_components([0.9, 0.8], energies=[100.0, 50.0], lrs=[0.1, 0.1])
        >>> [float(x) for x in parts["performance"]], [float(x) for x in parts["energy"]]
        ([0.75, 0.0], [0.0, 0.125])
        >>> [float(x) for x in parts["lr"]]  # equal for both: 1 x (1 - 0.75) x (1 - 0.5)
        [0.125, 0.125]
    """
    return dict(_checked_eq2(values, energies, lrs, alpha, beta, direction, lr_scale).terms)


@dataclass(frozen=True)
class Eq2:
    """Eq. 2 over one rung's competitors: the weights used, each weighted term, the score.

    ``weights`` holds the renormalized weight (summing to 1) of each component that entered
    the score; ``terms`` one array per name of :data:`COMPONENTS` (all zeros for a component
    left out), each the normalized attribute (1 best) times its weight; ``score`` their sum,
    clipped to [0, 1]. A competitor with a non-finite value has every term and its score 0.
    """

    weights: Mapping[str, float]
    terms: Mapping[str, npt.NDArray[np.float64]]
    score: npt.NDArray[np.float64]


def _checked_eq2(
    values: Any,
    energies: Any,
    lrs: Any,
    alpha: Any,
    beta: Any,
    direction: Any,
    lr_scale: Any,
) -> Eq2:
    """:func:`eq2` after checking every argument (``ValueError`` naming a bad one): the
    public boundary of :func:`weighted_objective` and :func:`weighted_components`."""
    alpha = check_unit_interval("alpha", alpha)
    beta = check_unit_interval("beta", beta)
    check_choice("direction", direction, DIRECTIONS)
    check_choice("lr_scale", lr_scale, LR_SCALES)
    perf = _vector("values", values)
    n = perf.size
    if n == 0:
        raise ValueError("`values` is empty: a rung needs at least one competitor.")
    e = None if energies is None else _vector("energies", energies, n)
    if e is not None and (not np.isfinite(e).all() or (e < 0).any()):
        raise ValueError(
            f"`energies` must be finite and >= 0 (joules per epoch), got {e.tolist()!r}."
        )
    lr = None if lrs is None else _vector("lrs", lrs, n)
    if lr is not None and (not np.isfinite(lr).all() or (lr <= 0).any()):
        raise ValueError(f"`lrs` must be finite and > 0, got {lr.tolist()!r}.")
    return eq2(perf, e, lr, alpha, beta, direction, lr_scale)


def eq2(
    values: npt.NDArray[np.float64],
    energies: npt.NDArray[np.float64] | None,
    lrs: npt.NDArray[np.float64] | None,
    alpha: float,
    beta: float,
    direction: Direction,
    lr_scale: LRScale,
) -> Eq2:
    """Eq. 2 of :func:`weighted_objective`, term by term, over checked inputs: a private
    kernel that trusts them (at least one value; energies finite and >= 0, LRs finite and
    > 0, of the values' length; alpha and beta in [0, 1])."""
    perf = values
    n = perf.size
    finite = np.isfinite(perf)
    oriented_perf = perf if direction == "maximize" else -perf
    p_score = np.zeros(n)
    if finite.any():
        p_score[finite] = _min_max_best_is_one(oriented_perf[finite])

    w_p, w_e, w_lr = component_weights(alpha, beta)
    normalized = [("performance", w_p, p_score)]
    if energies is not None:
        normalized.append(("energy", w_e, _min_max_best_is_one(-energies)))
    if lrs is not None:
        lr_score = _min_max_best_is_one(np.log(lrs) if lr_scale == "log" else lrs)
        normalized.append(("lr", w_lr, lr_score))

    total_weight = math.fsum(w for _, w, _ in normalized)
    if total_weight == 0.0:
        normalized, total_weight = [("performance", 1.0, p_score)], 1.0
    terms = {name: np.zeros(n) for name in COMPONENTS}
    for name, w, s in normalized:
        term = np.asarray(w * s / total_weight, dtype=np.float64)
        term[~finite] = 0.0
        terms[name] = term
    weights = {name: w / total_weight for name, w, _ in normalized}
    return Eq2(weights=weights, terms=terms, score=_score(terms))


def _score(terms: Mapping[str, npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    """Eq. 2's score: the sum of its terms per competitor, clipped to [0, 1] (0 for a
    competitor with a non-finite value, whose terms are all 0)."""
    return np.asarray(np.clip(sum(terms.values()), 0.0, 1.0), dtype=np.float64)


def _vector(name: str, seq: Any, n: int | None = None) -> npt.NDArray[np.float64]:
    """``seq`` as a 1-D float array; it must be a sequence of real numbers (of length ``n``).

    The entries are checked before ``np.ndim``, which raises numpy's own error (not naming
    the argument) for a ragged list such as ``[[1, 2], [3]]``.
    """
    floats = isinstance(seq, np.ndarray) and seq.dtype == np.float64 and seq.ndim == 1
    if not floats and (
        isinstance(seq, (str, bytes, Mapping))
        or not isinstance(seq, (Sequence, np.ndarray))
        or not all(is_real(x) for x in seq)
        or np.ndim(seq) != 1
    ):
        raise ValueError(
            f"`{name}` must be a one-dimensional sequence of numbers, got {_short(seq)}."
        )
    if n is not None and len(seq) != n:
        raise ValueError(f"`{name}` has {len(seq)} entries but `values` has {n}.")
    return np.asarray(seq, dtype=np.float64)


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."
