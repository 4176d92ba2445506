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


def test_divergence_level_keeps_tiny_losses_from_looking_exploded() -> None:
    noisy = np.array([0.002, 0.05, 0.01, 0.3])  # a trained model's minibatch losses
    assert sel.divergence_index(noisy) == 1
    assert sel.divergence_index(noisy, level=0.1) is None
    assert sel.divergence_index(np.array([0.002, 0.05, 5.0]), level=0.1) == 2
    assert sel.divergence_index(np.array([np.nan]), level=0.1) == 0


def test_sweep_indices_spread_over_the_grid() -> None:
    assert sel.sweep_indices(20, 7).tolist() == [0, 3, 6, 10, 13, 16, 19]
    assert sel.sweep_indices(5, 5).tolist() == [0, 1, 2, 3, 4]
    assert sel.sweep_indices(20, 3).tolist() == [0, 10, 19]


def test_progress_step_is_half_a_decade() -> None:
    assert sel.progress_step(sel.lr_grid(1e-3, 1.0, 20)) == 3
    assert sel.progress_step(sel.lr_grid(1e-3, 1.0, 10)) == 2
    assert sel.progress_step(sel.lr_grid(1e-3, 1.0, 4)) == 1


def test_clearly_lower() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.05, 12)
    flat = 2.3 + noise
    assert not sel.clearly_lower(flat + 0.01 * rng.normal(size=12), flat)  # a tie: keep
    assert sel.clearly_lower(flat - 0.3, flat)  # trains, where the larger LR stalls
    assert not sel.clearly_lower(flat + 0.3, flat)
    dead = np.append(flat[:6], np.full(6, np.inf))
    assert sel.clearly_lower(flat, dead) and not sel.clearly_lower(dead, flat)
    assert not sel.clearly_lower(dead, dead)
    # only the last half counts: an early bump of the larger LR is forgiven
    bumpy = np.append(flat[:6] + 1.0, flat[6:] - 0.2)
    assert not sel.clearly_lower(flat, bumpy)


def test_run_off_moves_down_while_smaller_is_clearly_better() -> None:
    losses = {k: np.full(8, float(abs(k - 9))) + 0.01 * np.arange(8) for k in range(21)}
    seen: list[int] = []

    def runs(k: int) -> np.ndarray:
        seen.append(k)
        return losses[k]

    assert sel.run_off(18, 3, runs) == 9  # 18 -> 15 -> 12 -> 9, and 6 is no better
    assert sel.run_off(9, 3, runs) == 9
    assert sel.run_off(1, 3, runs) == 1  # nothing half a decade below
    affordable = {18: losses[18], 15: losses[15]}  # no room for a run at 12
    assert sel.run_off(18, 3, affordable.get) == 15  # the budget ends it


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 19), st.integers(-1, 20), st.integers(0, 20))
def test_search_upwards_from_a_candidate_that_passes(
    candidate: int, limit: int, upper: int
) -> None:
    calls: list[int] = []

    def stable(k: int) -> bool:
        calls.append(k)
        return k <= limit

    found = sel.largest_stable_index(candidate, stable, upper=upper)
    if limit < 0:
        assert found is None
    elif limit < candidate or upper <= candidate:
        assert found == min(candidate, limit)
    else:
        assert found == min(upper, limit)
    assert len(calls) == len(set(calls))  # nothing checked twice
    assert len(calls) <= 2 + 2 * int(np.ceil(np.log2(21 + 2)))
