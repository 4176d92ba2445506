"""The robust steps of a rung's ranking: diverged values, ties within noise, protected
performance. Short pure functions over arrays; :func:`optuna_sm2.pruners.rank_rung` composes
them (``ranking="robust"``)."""

from __future__ import annotations

import heapq
from collections.abc import Callable

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


def _chain(following: list[int]) -> npt.NDArray[np.bool_]:
    """The anchors of groups made from the first place on, ``following[a]`` being the place
    after anchor ``a`` that starts the next group (``len(following)`` when none): one step per
    group, over plain integers."""
    anchors = np.zeros(len(following), dtype=np.bool_)
    a = 0
    while a < len(following):
        anchors[a] = True
        a = following[a]
    return anchors


def _anchored(
    by: npt.NDArray[np.intp], sorted_x: npt.NDArray[np.float64], anchors: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """``sorted_x`` (the values in the order ``by``) made equal to their group's anchor's (the
    last of ``anchors`` at or before them), back in the original order."""
    n = len(anchors)
    anchor = np.maximum.accumulate(np.where(anchors, np.arange(n), 0))
    tied = np.empty(n, dtype=np.float64)
    tied[by] = sorted_x[anchor]
    return tied


def tie_energies(
    energies: npt.NDArray[np.float64],
    spreads: npt.NDArray[np.float64],
    resolutions: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Energies that differ by less than their combined spread and resolution, made equal.

    Energy ``i`` (finite and >= 0) stands for the interval ``e * (1 - h)`` .. ``e * (1 + h)``
    of half-width ``h = s + r``: ``s = spreads[i]``, its relative half-range (NaN when unknown:
    :data:`ENERGY_NOISE_FLOOR`), and ``r = resolutions[i]``, how far the meter's steps may have
    moved it (NaN, or no ``resolutions``: 0); both >= 0. From the lowest energy up, each energy
    joins the group of the lowest one not yet grouped (the anchor ``a``; of equal energies, the
    one with the widest interval) when their intervals overlap, ``e * (1 - h) <= e_a * (1 +
    h_a)``, and takes the anchor's energy; otherwise it starts a group. The result does not
    depend on the order of the competitors.

    The next group starts at the first energy above the anchor whose interval starts after the
    anchor's ends; no lower energy's interval does (``e * (1 - h) <= e <= e_a * (1 + h_a)``),
    so that place is a binary search in the running maximum of the intervals' starts.

    Example:
        >>> import numpy as np
        >>> nan = float("nan")
        >>> tie_energies(np.array([100.0, 108.0, 111.0, 300.0]), np.array([nan, nan, 0.01, nan]))
        array([100., 100., 111., 300.])
        >>> tie_energies(np.array([100.0, 130.0]), np.array([0.01, 0.01]), np.array([0.2, 0.1]))
        array([100., 100.])
    """
    h = np.where(np.isnan(spreads), ENERGY_NOISE_FLOOR, spreads)
    if resolutions is not None:
        h = h + np.where(np.isnan(resolutions), 0.0, resolutions)
    by = np.lexsort((-h, energies))
    e, h = energies[by], h[by]
    starts = np.maximum.accumulate(e * (1.0 - h))
    following = np.searchsorted(starts, e * (1.0 + h), side="right")
    return _anchored(by, e, _chain(following.tolist()))


def tie_lrs(lrs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Learning rates within :data:`LR_TIE_RATIO` of a larger one, made equal.

    From the largest down, each LR (finite and > 0) joins the group of the largest one not yet
    grouped (the anchor) when ``anchor / lr <= LR_TIE_RATIO``, and takes the anchor's value;
    otherwise it starts a group.

    Example:
        >>> import numpy as np
        >>> tie_lrs(np.array([0.1, 0.07, 0.05, 1.0]))
        array([0.1 , 0.1 , 0.05, 1.  ])
    """
    by = np.argsort(-lrs, kind="stable")
    descending = lrs[by]
    ascending, x = -descending, descending.tolist()
    n = len(x)
    anchors = np.zeros(n, dtype=np.bool_)
    a = 0
    while a < n:  # one step per group: the next starts at the first LR out of a's ratio
        anchors[a] = True
        # Near it by a binary search, then exactly where the rule puts it (equal LRs at once).
        m = max(int(np.searchsorted(ascending, -(x[a] / LR_TIE_RATIO), side="left")), a + 1)
        while m > a + 1 and x[a] / x[m - 1] > LR_TIE_RATIO:
            m = max(int(np.searchsorted(ascending, ascending[m - 1], side="left")), a + 1)
        while m < n and x[a] / x[m] <= LR_TIE_RATIO:
            m = int(np.searchsorted(ascending, ascending[m], side="right"))
        a = m
    return _anchored(by, descending, anchors)


def _first_outside(
    n: int, within: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.bool_]]
) -> npt.NDArray[np.intp]:
    """Per place ``j`` of ``n``: the first place after it out of its reach (``n`` when none),
    ``within(m)`` saying per ``j`` whether place ``m[j]`` is in ``j``'s reach. Each place is
    in its own reach, and a place out of reach leaves every later one out too: a binary search
    per ``j`` at once."""
    low, high = np.arange(n), np.full(n, n)  # within at low, not at high (or high == n)
    while (searching := high - low > 1).any():
        middle = (low + high) // 2
        reached = within(np.minimum(middle, n - 1))
        low = np.where(searching & reached, middle, low)
        high = np.where(searching & ~reached, middle, high)
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
    x = oriented[by_value]
    limit = tolerance * np.abs(x)
    ends = _first_outside(n, lambda m: x - x[m] <= limit).tolist()
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
