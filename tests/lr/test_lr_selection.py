"""The pure selection rules of the LR sweep (no torch)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from optuna_sm2.lr import _selection as sel


def test_grid_is_log_spaced_and_inclusive() -> None:
    lrs = sel.lr_grid(1e-3, 1.0, 20)
    assert lrs[0] == 1e-3 and np.isclose(lrs[-1], 1.0)
    assert np.allclose(np.diff(np.log10(lrs)), 3 / 19)


def test_divergence_index_nan_inf_and_explosion() -> None:
    assert sel.divergence_index(np.array([3.0, 2.0, 1.0])) is None
    assert sel.divergence_index(np.array([3.0, np.nan, 1.0])) == 1
    assert sel.divergence_index(np.array([3.0, 2.0, np.inf])) == 2
    assert sel.divergence_index(np.array([3.0, 1.0, 3.9, 4.1])) == 3
    assert sel.divergence_index(np.array([9.0]), reference=2.0) == 0
    assert sel.divergence_index(np.array([-1.0, -0.5, 5.0])) == 2  # negative losses


def test_curvature_of_a_parabola_in_log_lr() -> None:
    lrs = sel.lr_grid(1e-3, 1.0, 20)
    x = np.log10(lrs)
    curv = sel.curvature(lrs, 2.0 * x**2)
    assert np.allclose(curv[2:-2], 4.0)


def test_window_prefers_the_flat_part_with_the_largest_lrs() -> None:
    lrs = sel.lr_grid(1e-3, 1.0, 12)
    x = np.log10(lrs)
    # flat, then a bend, then a straight steady descent: the straight top part wins
    losses = np.where(x < -2, 1.0, 1.0 - (x + 2) ** 2)
    losses = np.where(x > -1.5, 0.75 - 0.5 * (x + 1.5), losses)
    first, last, _ = sel.candidate_window(lrs, losses, 3)
    assert last == 11 and first == 9


def test_candidate_window_short_curves() -> None:
    lrs = sel.lr_grid(1e-3, 1.0, 20)
    assert sel.candidate_window(lrs[:0], np.zeros(0), 3)[:2] == (0, 0)
    assert sel.candidate_window(lrs[:2], np.array([1.0, 0.9]), 3)[:2] == (0, 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 19), st.integers(-1, 19))
def test_search_finds_the_largest_stable_index(candidate: int, limit: int) -> None:
    calls: list[int] = []

    def stable(k: int) -> bool:
        calls.append(k)
        return k <= limit

    found = sel.largest_stable_index(candidate, stable)
    expected = min(candidate, limit) if limit >= 0 else None
    assert found == expected
    assert len(calls) <= 2 + 2 * int(np.ceil(np.log2(candidate + 2)))


def test_margin_and_probe() -> None:
    lrs = sel.lr_grid(1e-3, 1.0, 20)
    probe = sel.extend_grid(lrs)
    assert probe.size == 21 and np.isclose(probe[-1] / probe[-2], lrs[1] / lrs[0])
    assert sel.with_margin(20) == 19  # the probe above lr_max passed: lr_max
    assert sel.with_margin(5) == 4
    assert sel.with_margin(0) == 0
    assert sel.with_margin(None) == 0


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=3))
def test_rules_never_crash_on_any_losses(raw: list[float]) -> None:
    losses = np.array(raw, dtype=np.float64)
    stop = sel.divergence_index(losses)
    stop = len(losses) if stop is None else stop
    lrs = sel.lr_grid(1e-3, 1.0, len(losses))
    first, last, _ = sel.candidate_window(lrs[:stop], losses[:stop], sel.window_size(len(lrs)))
    assert 0 <= first <= last <= max(stop - 1, 0)
    assert np.isfinite(losses[:stop]).all()
