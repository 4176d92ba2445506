"""The robust steps of a rung's ranking: diverged values, ties within noise, protected
performance. Short pure functions over arrays; :func:`optuna_sm2.pruners.rank_rung` composes
them (``ranking="robust"``)."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

MAD_TO_SD = 1.4826
"""The median absolute deviation times this estimates a normal distribution's standard
deviation."""

DIVERGED_SCALES = 10.0
"""A value is diverged when it is worse than the median by more than this many robust scales."""

DIVERGED_MAGNITUDE = 0.1
"""The robust scale is at least this share of the median's magnitude (so that, with
:data:`DIVERGED_SCALES`, a diverged value is worse than the median by at least the median's
own magnitude: a loss or perplexity of more than twice the median)."""

ENERGY_NOISE_FLOOR = 0.05
"""Relative spread assumed for an energy figure that stores none (one epoch): the 5 % wobble
of energy per epoch seen between runs of the same configuration."""

LR_TIE_RATIO = 1.5
"""Stable learning rates within this ratio of each other are tied: one step of the default
LR grid (20 points over 1e-3 .. 1) is a ratio of 1.44."""


def diverged_mask(oriented: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which values are diverged: far worse than the others, though finite.

    ``oriented`` holds the values oriented so that larger is better. With ``m`` the median and
    ``MAD`` the median absolute deviation of the finite ones, a value ``x`` is diverged when

        m - x > DIVERGED_SCALES * max(MAD_TO_SD * MAD, DIVERGED_MAGNITUDE * |m|)

    and that scale is above 0. Only the bad side counts (nothing is diverged for being far
    better), and a non-finite value is never flagged (it is handled as non-finite). The rule
    is scale-free: it is computed on the values divided by their largest magnitude, so that
    values near the float range never overflow. Fewer than half of the values can be
    diverged, and every diverged value is worse than every other.

    Example:
        >>> import numpy as np
        >>> diverged_mask(-np.array([101.0, 98.0, 5e21, 97.0, 110.0])).tolist()
        [False, False, True, False, False]
        >>> diverged_mask(np.array([0.91, 0.88, 0.10, 0.90])).tolist()  # chance: not diverged
        [False, False, False, False]
    """
    flags = np.zeros(oriented.shape, dtype=np.bool_)
    finite = np.isfinite(oriented)
    if not finite.any():
        return flags
    x = oriented[finite]
    magnitude = float(np.max(np.abs(x)))
    if magnitude == 0.0:
        return flags
    x = x / magnitude
    median = float(np.median(x))
    scale = max(MAD_TO_SD * float(np.median(np.abs(x - median))), DIVERGED_MAGNITUDE * abs(median))
    if scale > 0.0:
        flags[finite] = median - x > DIVERGED_SCALES * scale
    return flags


def tie_energies(
    energies: Sequence[float],
    spreads: Sequence[float | None],
    resolutions: Sequence[float | None] | None = None,
) -> list[float]:
    """Energies that differ by less than their combined spread and resolution, made equal.

    Energy ``i`` stands for the interval ``e * (1 - h)`` .. ``e * (1 + h)`` of half-width
    ``h = s + r``: ``s = spreads[i]``, its relative half-range (``None`` when unknown:
    :data:`ENERGY_NOISE_FLOOR`), and ``r = resolutions[i]``, how far the meter's steps may have
    moved it (``None``, or no ``resolutions``: 0). From the lowest energy up, each energy joins
    the group of the lowest one not yet grouped (the anchor ``a``; of equal energies, the one
    with the widest interval) when their intervals overlap, ``e * (1 - h) <= e_a * (1 + h_a)``,
    and takes the anchor's energy; otherwise it starts a group. The result does not depend on
    the order of the competitors.

    Example:
        >>> tie_energies([100.0, 108.0, 111.0, 300.0], [None, None, 0.01, None])
        [100.0, 100.0, 111.0, 300.0]
        >>> tie_energies([100.0, 130.0], [0.01, 0.01], [0.2, 0.1])  # a coarse meter's steps
        [100.0, 100.0]
    """
    r = [0.0] * len(energies) if resolutions is None else [x or 0.0 for x in resolutions]
    h = [(ENERGY_NOISE_FLOOR if x is None else x) + r[i] for i, x in enumerate(spreads)]
    tied = list(energies)
    anchor: int | None = None
    by_energy = np.lexsort(
        (-np.asarray(h, dtype=np.float64), np.asarray(energies, dtype=np.float64))
    )
    for i in by_energy.tolist():
        if anchor is None or energies[i] * (1.0 - h[i]) > energies[anchor] * (1.0 + h[anchor]):
            anchor = i
        tied[i] = energies[anchor]
    return tied


def tie_lrs(lrs: Sequence[float]) -> list[float]:
    """Learning rates within :data:`LR_TIE_RATIO` of a larger one, made equal.

    From the largest down, each LR joins the group of the largest one not yet grouped (the
    anchor) when ``anchor / lr <= LR_TIE_RATIO``, and takes the anchor's value; otherwise it
    starts a group.

    Example:
        >>> tie_lrs([0.1, 0.07, 0.05, 1.0])
        [0.1, 0.1, 0.05, 1.0]
    """
    tied = list(lrs)
    anchor: float | None = None
    for i in np.argsort(-np.asarray(lrs, dtype=np.float64), kind="stable").tolist():
        if anchor is None or anchor / lrs[i] > LR_TIE_RATIO:
            anchor = lrs[i]
        tied[i] = anchor
    return tied


def _window_ends(x: npt.NDArray[np.float64], tolerance: float) -> npt.NDArray[np.int64]:
    """For ``x`` sorted from the largest down: per ``j``, how many of the first values are
    within the tolerance of ``x[j]`` (``x[j] - x[m] <= tolerance * |x[j]|``, computed so), by
    a binary search per ``j`` at once (the difference only grows with ``m``)."""
    n = len(x)
    limit = tolerance * np.abs(x)
    low, high = np.arange(n), np.full(n, n)  # within at low, not at high (or high == n)
    while (searching := high - low > 1).any():
        middle = (low + high) // 2
        within = x - x[np.minimum(middle, n - 1)] <= limit
        low = np.where(searching & within, middle, low)
        high = np.where(searching & ~within, middle, high)
    return high


def protected_order(
    scores: npt.NDArray[np.float64],
    oriented: npt.NDArray[np.float64],
    tolerance: float,
) -> list[int]:
    """The competitors best first: by score, but never ahead of a clearly better performer.

    Place by place, the competitors eligible are those whose oriented value ``x`` (larger is
    better; all finite) is within the tolerance of the best value still unplaced, ``top``:
    ``top - x <= tolerance * |top|``. Of them, the largest ``(score, x)`` takes the place. So
    a competitor never ranks ahead of one whose value is better than its own by more than
    ``tolerance`` times that better value's magnitude, and when the score increases with the
    value (``alpha=1``) this is the order of the values.

    Example:
        >>> import numpy as np
        >>> scores, values = np.array([0.4, 0.6, 0.9]), np.array([0.90, 0.89, 0.50])
        >>> protected_order(scores, values, 0.02)  # 0.89 is within 2 % of 0.90; 0.50 is not
        [1, 0, 2]
    """
    by_key = np.lexsort((-oriented, -scores))
    x_by_key = oriented[by_key]
    top_by_key = np.maximum.accumulate(x_by_key[::-1])[::-1]
    if (top_by_key - x_by_key <= tolerance * np.abs(top_by_key)).all():
        fast: list[int] = by_key.tolist()
        return fast  # nobody overtakes a clearly better value
    n = len(scores)
    by_value = np.argsort(-oriented, kind="stable")
    ends = _window_ends(oriented[by_value], tolerance).tolist()
    priority = np.empty(n, dtype=np.int64)
    priority[by_key] = np.arange(n)  # 0 for the largest (score, x): the heap pops it first
    priority_by_value, trial_by_priority = priority[by_value].tolist(), by_key.tolist()
    position = np.empty(n, dtype=np.int64)
    position[by_value] = np.arange(n)
    position_of = position.tolist()
    placed = bytearray(n)  # by position in value order
    eligible: list[int] = []  # priorities
    order: list[int] = []
    top = entered = 0
    for _ in range(n):
        while placed[top]:
            top += 1
        end = ends[top]
        if end > entered:  # these come within the tolerance of the best value unplaced
            if end - entered > len(eligible) // 4:
                eligible.extend(priority_by_value[entered:end])
                heapq.heapify(eligible)
            else:
                for p in priority_by_value[entered:end]:
                    heapq.heappush(eligible, p)
            entered = end
        i = trial_by_priority[heapq.heappop(eligible)]
        placed[position_of[i]] = 1
        order.append(i)
    return order
