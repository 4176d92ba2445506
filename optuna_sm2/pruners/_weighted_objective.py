"""SM²'s normalized weighted objective (Eq. 2 of arXiv 2412.08526)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

Direction = Literal["maximize", "minimize"]
LRScale = Literal["log", "linear"]

_DIRECTIONS = ("maximize", "minimize")
_LR_SCALES = ("log", "linear")


def check_unit_interval(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``value`` is a number in [0, 1]."""
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}.")


def check_lr_scale(lr_scale: str) -> None:
    """Raise ``ValueError`` unless ``lr_scale`` is one of the accepted scales."""
    if lr_scale not in _LR_SCALES:
        raise ValueError(f"`lr_scale` must be one of {_LR_SCALES}, got {lr_scale!r}.")


def component_weights(alpha: float, beta: float) -> tuple[float, float, float]:
    """The weights of performance, energy and learning rate in Eq. 2."""
    return alpha, (1.0 - alpha) * beta, (1.0 - alpha) * (1.0 - beta)


def _min_max_best_is_one(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Rescale ``x`` to [0, 1] with 1 for its largest entry; all equal gives all 1."""
    low, high = float(np.min(x)), float(np.max(x))
    if high == low:
        return np.ones_like(x)
    return np.asarray((x - low) / (high - low), dtype=np.float64)


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
    terms, total_weight, finite = _weighted_terms(
        values, energies, lrs, alpha, beta, direction, lr_scale
    )
    score = np.clip(sum(w * s for _, w, s in terms) / total_weight, 0.0, 1.0)
    score[~finite] = 0.0
    return score


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

    Same arguments, validation and normalization as :func:`weighted_objective`. Returns one
    array per name of :data:`COMPONENTS`: the component's normalized attribute (1 best) times
    its weight, the weights renormalized as :func:`weighted_objective` renormalizes them. A
    component passed as ``None`` (or dropped because nothing but zero weights remained) is all
    zeros, and every term of a competitor with a non-finite value is 0. The terms of a
    competitor sum to its :func:`weighted_objective` score up to rounding (the score is also
    clipped to [0, 1]).

    Example:
        >>> from optuna_sm2.pruners._weighted_objective import weighted_components
        >>> parts = weighted_components([0.9, 0.8], energies=[100.0, 50.0], lrs=[0.1, 0.1])
        >>> [float(x) for x in parts["performance"]], [float(x) for x in parts["energy"]]
        ([0.75, 0.0], [0.0, 0.125])
        >>> [float(x) for x in parts["lr"]]  # equal for both: 1 x (1 - 0.75) x (1 - 0.5)
        [0.125, 0.125]
    """
    terms, total_weight, finite = _weighted_terms(
        values, energies, lrs, alpha, beta, direction, lr_scale
    )
    parts = {name: np.zeros(finite.size) for name in COMPONENTS}
    for name, w, s in terms:
        part = np.asarray(w * s / total_weight, dtype=np.float64)
        part[~finite] = 0.0
        parts[name] = part
    return parts


def _weighted_terms(
    values: Sequence[float],
    energies: Sequence[float] | None,
    lrs: Sequence[float] | None,
    alpha: float,
    beta: float,
    direction: Direction,
    lr_scale: LRScale,
) -> tuple[list[tuple[str, float, npt.NDArray[np.float64]]], float, npt.NDArray[np.bool_]]:
    """``(name, weight, normalized attribute)`` per present component, their total weight and
    the mask of finite values; raises ``ValueError`` for bad arguments."""
    check_unit_interval("alpha", alpha)
    check_unit_interval("beta", beta)
    if direction not in _DIRECTIONS:
        raise ValueError(f"`direction` must be one of {_DIRECTIONS}, got {direction!r}.")
    check_lr_scale(lr_scale)
    perf = np.asarray(values, dtype=np.float64).reshape(-1)
    n = perf.size
    if n == 0:
        raise ValueError("`values` is empty: a rung needs at least one competitor.")
    for name, seq in (("energies", energies), ("lrs", lrs)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"`{name}` has {len(seq)} entries but `values` has {n}.")

    finite = np.isfinite(perf)
    oriented_perf = perf if direction == "maximize" else -perf
    p_score = np.zeros(n)
    if finite.any():
        p_score[finite] = _min_max_best_is_one(oriented_perf[finite])

    w_p, w_e, w_lr = component_weights(alpha, beta)
    terms = [("performance", w_p, p_score)]
    if energies is not None:
        e = np.asarray(energies, dtype=np.float64)
        if not np.isfinite(e).all() or (e < 0).any():
            raise ValueError("`energies` must be finite and >= 0 (joules per epoch).")
        terms.append(("energy", w_e, _min_max_best_is_one(-e)))
    if lrs is not None:
        lr = np.asarray(lrs, dtype=np.float64)
        if not np.isfinite(lr).all() or (lr <= 0).any():
            raise ValueError("`lrs` must be finite and > 0.")
        lr_score = _min_max_best_is_one(np.log(lr) if lr_scale == "log" else lr)
        terms.append(("lr", w_lr, lr_score))

    total_weight = math.fsum(w for _, w, _ in terms)
    if total_weight == 0.0:
        terms, total_weight = [("performance", 1.0, p_score)], 1.0
    return terms, total_weight, finite
