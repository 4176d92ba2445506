"""Pure selection rules of SM²'s exploratory learning-rate sweep (arXiv 2412.08526, Fig. 1).

Each function is one idea over numpy arrays and imports no torch, so that the rule can be
tested on synthetic curves. :func:`optuna_sm2.explore_lr` records the per-LR losses and
composes these functions; ``docs/lr-sweep.md`` explains every choice.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: A loss above this multiple of the best loss seen so far in a cycle counts as exploded
#: (the convention of fastai's and torch-lr-finder's range tests).
EXPLODE_FACTOR = 4.0
#: Width of the centered moving average applied before differentiating twice.
SMOOTH_WIDTH = 3
#: A window is "low curvature" when its score is at most this fraction of the largest score.
LOW_FRACTION = 0.5
#: Smallest grid the rule accepts: a second derivative needs three points.
MIN_LRS = 3


def lr_grid(lr_min: float, lr_max: float, n_lrs: int) -> FloatArray:
    """``n_lrs`` learning rates log-spaced over ``[lr_min, lr_max]``, both ends included."""
    return np.logspace(np.log10(lr_min), np.log10(lr_max), n_lrs, dtype=np.float64)


def window_size(n_lrs: int) -> int:
    """Points per curvature window: a sixth of the grid, at least 3 (half a decade on 20)."""
    return max(MIN_LRS, round(n_lrs / 6))


def divergence_index(
    losses: FloatArray,
    *,
    reference: float = np.inf,
    factor: float = EXPLODE_FACTOR,
    level: float = -np.inf,
    confirm: bool = False,
    complete: bool = True,
) -> int | None:
    """First index whose loss is non-finite or above ``factor`` x the best loss before it.

    ``reference`` is a loss known before the first entry (the cycle's starting loss); it
    takes part in the best-so-far. ``level`` is a typical loss (the sweep's recent mean):
    the best-so-far is never taken below it, so that one lucky tiny minibatch loss of a
    trained model does not make the next ordinary one look exploded. With ``confirm``, a
    finite loss above the limit counts only when the next one is above it too (an explosion
    grows, a noisy minibatch does not repeat); the last entry needs no confirmation when
    the losses are ``complete``, and waits for the next one otherwise. Returns ``None`` when
    no entry diverged.
    """
    best = reference if np.isfinite(reference) else np.inf
    suspect: int | None = None
    for i, loss in enumerate(np.asarray(losses, dtype=np.float64)):
        limit = max(best, level) if np.isfinite(best) else best
        high = bool(np.isfinite(limit) and loss > _explode_limit(limit, factor))
        if not np.isfinite(loss) or (high and (not confirm or suspect is not None)):
            return i if suspect is None else suspect
        if high:
            suspect = i
            continue
        suspect = None
        best = min(best, float(loss))
    return suspect if complete else None


def _explode_limit(best: float, factor: float) -> float:
    """The loss above which a step counts as exploded, also for negative best losses."""
    return best * factor if best > 0.0 else best + (factor - 1.0) * abs(best)


def smooth(values: FloatArray, width: int = SMOOTH_WIDTH) -> FloatArray:
    """Centered moving average of ``width`` points.

    Near the ends the window shrinks symmetrically (the end points stay as they are), so a
    straight line is left unchanged and the smoothing adds no kink at the edges.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    halves = [min(width // 2, i, n - 1 - i) for i in range(n)]
    return np.array([x[i - h : i + h + 1].mean() for i, h in enumerate(halves)])


def normalize(values: FloatArray) -> FloatArray:
    """Min-max rescale finite values to [0, 1]; a constant curve maps to zeros.

    The values are first divided by their largest magnitude, so that losses near the float
    range (1e308) rescale without overflow.
    """
    x = np.asarray(values, dtype=np.float64)
    scale = float(np.abs(x).max()) if x.size else 0.0
    if scale == 0.0:
        return np.zeros_like(x)
    x = x / scale
    span = float(x.max() - x.min())
    return np.zeros_like(x) if span == 0.0 else (x - x.min()) / span


def curvature(lrs: FloatArray, values: FloatArray) -> FloatArray:
    """Second derivative of ``values`` over ``log10(lrs)`` (zeros for fewer than 3 points)."""
    x = np.log10(np.asarray(lrs, dtype=np.float64))
    y = np.asarray(values, dtype=np.float64)
    if y.size < MIN_LRS:
        return np.zeros_like(y)
    return np.asarray(np.gradient(np.gradient(y, x), x), dtype=np.float64)


def window_scores(curv: FloatArray, width: int) -> FloatArray:
    """Mean absolute curvature of every run of ``width`` consecutive points."""
    c = np.abs(np.asarray(curv, dtype=np.float64))
    return np.array([c[i : i + width].mean() for i in range(c.size - width + 1)])


def flattest_highest_window(lrs: FloatArray, scores: FloatArray, width: int) -> int:
    """Start of the low-curvature window with the largest mean LR.

    "Low" means a score at most :data:`LOW_FRACTION` of the largest score: low relative to
    the sharpest bend of the curve (usually the elbow before divergence), so that a steady
    descent counts as low while the elbow does not. (A median threshold would call every
    descent "high" as soon as a long flat plateau fills the rest of the grid.) The flattest
    window always counts as low.
    """
    low = np.flatnonzero(scores <= max(LOW_FRACTION * scores.max(), scores.min()))
    means = np.array([lrs[i : i + width].mean() for i in low])
    return int(low[int(np.argmax(means))])


def candidate_window(
    lrs: FloatArray, losses: FloatArray, width: int
) -> tuple[int, int, FloatArray]:
    """The paper's window over a curve with no diverged point: ``(first, last, curvature)``.

    ``lrs`` and ``losses`` have equal length (the grid up to the first diverged LR). The
    losses are smoothed, rescaled to [0, 1] and differentiated twice over log-LR; the
    flattest-highest window of ``width`` points is chosen and its largest LR (index ``last``)
    is the candidate. A curve no longer than a window is one window.
    """
    n = len(losses)
    if n == 0:
        return 0, 0, np.zeros(0)
    curv = curvature(lrs, normalize(smooth(normalize(losses))))  # inner one: no overflow
    if n <= width:
        return 0, n - 1, curv
    first = flattest_highest_window(lrs, window_scores(curv, width), width)
    return first, first + width - 1, curv


def largest_stable_index(
    candidate: int, is_stable: Callable[[int], bool], *, upper: int | None = None
) -> int | None:
    """Largest index ``<= candidate`` that ``is_stable`` accepts, searching downwards.

    The candidate is tried first (one check when it passes). When it fails, stability is
    assumed monotone in the LR: indices ``candidate - 1, -2, -4, ...`` are tried until one
    passes (a galloping search, since the limit is usually a step or two below), then the gap
    is bisected: about ``2 log2(distance)`` checks. Returns ``None`` when index 0 fails.

    With ``upper`` (an index above the candidate), a candidate that passes is not the end:
    ``candidate + 1, +2, +4, ...`` are tried up to ``upper`` in the same way, so that a
    candidate that came out low (a noisy curve) does not cap the result.
    """
    if is_stable(candidate):
        if upper is None or upper <= candidate:
            return candidate
        lo, step, hi = candidate, 1, upper + 1  # hi: known unstable, or past the end
        while lo + step < hi:
            if not is_stable(lo + step):
                hi = lo + step
                break
            lo, step = lo + step, step * 2
        return _bisect(lo, hi, is_stable)
    hi, step = candidate, 1  # hi: known unstable
    lo = -1  # lo: known stable, -1 for none yet
    while candidate - step >= 0:
        if is_stable(candidate - step):
            lo = candidate - step
            break
        hi, step = candidate - step, step * 2
    if lo < 0 and hi > 0 and is_stable(0):
        lo = 0
    return _bisect(lo, hi, is_stable) if lo >= 0 else None


def _bisect(lo: int, hi: int, is_stable: Callable[[int], bool]) -> int:
    """The largest stable index between ``lo`` (stable) and ``hi`` (not), by bisection."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if is_stable(mid):
            lo = mid
        else:
            hi = mid
    return lo


def extend_grid(lrs: FloatArray) -> FloatArray:
    """The grid with one more log-step above its largest LR (a probe for the margin)."""
    return np.append(lrs, lrs[-1] * lrs[-1] / lrs[-2])


def with_margin(verified: int | None) -> int:
    """The selected index: one grid step below the largest verified one (0 at the bottom).

    A step-after-step check cannot see an LR barely above the stability limit (its growth
    factor per step is close to 1), so the verified LR may still be just above the limit;
    the LR one step below it is not. ``verified`` indexes :func:`extend_grid`, so that
    ``lr_max`` is selected when the probe above it passes.
    """
    return 0 if verified is None else max(verified - 1, 0)


def sweep_indices(n_lrs: int, n_sweep: int) -> npt.NDArray[np.intp]:
    """The grid indices a sweep of ``n_sweep`` LRs trains with: spread evenly, ends included.

    >>> sweep_indices(20, 3).tolist(), sweep_indices(20, 20).tolist() == list(range(20))
    ([0, 10, 19], True)
    """
    return np.unique(np.round(np.linspace(0, n_lrs - 1, n_sweep)).astype(np.intp))


def progress_step(lrs: FloatArray) -> int:
    """Grid steps in half a decade (3 on the paper's grid), at least 1: how far below an LR the
    run-off looks for one that trains better."""
    steps = 0.5 / float(np.log10(lrs[1] / lrs[0]))
    return max(1, int(np.floor(steps + 0.5 + 1e-9)))  # the nearest count, halves upwards


#: Standard errors by which a smaller LR's run must end lower to beat a larger one.
RUNOFF_Z = 1.0
#: How long a lead must last, in lengths of the run that measured it: the gap's trend over the
#: run's last half, projected to this many times the run's length, must still favour the leader.
HORIZON = 2.0
#: Scales a median absolute deviation to a standard deviation (normal noise).
MAD_TO_SD = 1.4826
#: Share of the incumbent's loss by which a challenger must end lower to replace the user's LR.
INCUMBENT_MARGIN = 0.01


def clearly_lower(
    smaller: FloatArray, larger: FloatArray, z: float = RUNOFF_Z, margin: float = 0.0
) -> bool:
    """Whether the run at the smaller LR ended clearly lower than the run at the larger one.

    Both arrays hold the per-step losses of one run (each measured before the step on that
    batch, so each is a loss on a batch the run had not trained on yet), on the same batches.
    The last half of the steps is compared pairwise: the smaller LR wins when the mean
    difference exceeds ``z`` standard errors of that mean. A run that went non-finite loses;
    a tie (within the noise) keeps the larger LR.
    """
    a = np.asarray(smaller, dtype=np.float64)
    b = np.asarray(larger, dtype=np.float64)
    tail = slice(a.size // 2, None)
    a, b = a[tail], b[tail]
    if not np.isfinite(b).all():
        return bool(np.isfinite(a).all())
    if not np.isfinite(a).all():
        return False
    diff = b - a
    spread = float(diff.std(ddof=1)) / np.sqrt(diff.size) if diff.size > 1 else 0.0
    return float(diff.mean()) > z * spread + margin


def robust_trend(steps: FloatArray, values: FloatArray) -> tuple[float, float, float]:
    """``(slope, intercept, standard error of the slope)`` of a Theil-Sen line through the points.

    The slope is the median of the pairwise slopes, the intercept the median of the residual
    offsets, so that one outlying minibatch loss does not tilt the line; the standard error is
    the least-squares formula with the residuals' scaled median absolute deviation as their
    spread. Needs at least 3 points.
    """
    i, j = np.triu_indices(values.size, k=1)
    slope = float(np.median((values[j] - values[i]) / (steps[j] - steps[i])))
    intercept = float(np.median(values - slope * steps))
    sigma = MAD_TO_SD * float(np.median(np.abs(values - (slope * steps + intercept))))
    return slope, intercept, sigma / float(np.sqrt(((steps - steps.mean()) ** 2).sum()))


def lead_lasts(
    ahead: FloatArray, behind: FloatArray, horizon: float = HORIZON, z: float = RUNOFF_Z
) -> bool:
    """Whether the lead of the run ``ahead`` over the run ``behind`` is not seen to close.

    Over the last half of the steps, robust lines (:func:`robust_trend`) are fitted to the gap
    ``behind - ahead`` and to ``behind``'s own losses. The lead is closing when ``behind`` is
    still training (its loss falls by more than ``z`` standard errors of its slope, and it
    :func:`progressed`: a run recovering from a spike above its starting loss has not trained
    yet), and the gap's line slopes down and, projected to step ``horizon x n`` (``n`` the
    run's steps), is at or below 0. A short run favours a small LR (its loss falls first; Wu
    et al. 2018): a larger LR that is catching up, fast enough to overtake within as long
    again, keeps its place. A larger LR that stalls does not veto a lead. Non-finite runs: as
    in :func:`clearly_lower`.

    >>> t = np.arange(12.0)
    >>> lead_lasts(2.0 - 0.01 * t, 2.1 - 0.01 * t), lead_lasts(2.0 - 0.01 * t, 2.1 - 0.03 * t)
    (True, False)
    """
    a = np.asarray(ahead, dtype=np.float64)
    b = np.asarray(behind, dtype=np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return bool(np.isfinite(a).all())
    start = a.size // 2
    if a.size - start < 3:
        return True
    steps = np.arange(start, a.size, dtype=np.float64)
    slope, intercept, _ = robust_trend(steps, (b - a)[start:])
    falling, _, falling_spread = robust_trend(steps, b[start:])
    training = falling < -z * falling_spread and progressed(b)
    closing = slope < 0.0 and slope * (horizon * a.size - 1) + intercept <= 0.0
    return not (training and closing)


def trains_better(challenger: FloatArray, other: FloatArray, margin: float = 0.0) -> bool:
    """``challenger``'s run ended clearly lower than ``other``'s (by ``margin`` more than the
    noise) and its lead lasts (:func:`clearly_lower`, :func:`lead_lasts`)."""
    return clearly_lower(challenger, other, margin=margin) and lead_lasts(challenger, other)


def progressed(run: FloatArray) -> bool:
    """Whether a run trained: its losses are finite and the median over its last half is below
    its first loss (the loss of the starting weights)."""
    losses = np.asarray(run, dtype=np.float64)
    tail = losses[losses.size // 2 :]
    return bool(np.isfinite(losses).all() and float(np.median(tail)) < losses[0])


def user_lr_wins(user: FloatArray, pick: FloatArray) -> bool:
    """Whether the rule's pick gives way to the user's LR: the pick's run did not train
    (:func:`progressed`), and the run at the user's LR trains better than it by
    :data:`INCUMBENT_MARGIN` of the pick's loss (over the last half) beyond the noise, with a
    lead that lasts (:func:`trains_better`). A pick that trains keeps its place over a
    smaller user's LR whose short run ends lower (short-horizon bias, Wu et al. 2018)."""
    if progressed(pick):
        return False
    tail = np.asarray(pick, dtype=np.float64)[len(pick) // 2 :]
    level = float(np.abs(tail).mean()) if np.isfinite(tail).all() else 0.0
    return trains_better(user, pick, INCUMBENT_MARGIN * level)


def run_off(top: int, step: int, runs: Callable[[int], FloatArray | None]) -> int:
    """From ``top``, move down ``step`` grid indices while the smaller LR clearly trains better
    and its lead lasts (:func:`trains_better`).

    ``runs(k)`` gives the per-step losses of a run at index ``k`` (see :func:`clearly_lower`),
    or ``None`` when the budget has no room for it, which ends the run-off where it stands.
    """
    here = top
    while here - step >= 0:
        larger, smaller = runs(here), runs(here - step)
        if larger is None or smaller is None or not trains_better(smaller, larger):
            break
        here -= step
    return here
