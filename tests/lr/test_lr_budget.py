"""explore_lr with a plan: fewer swept LRs, the budget, and every sample counted."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from optuna_sm2 import EnergyTracker, explore_lr
from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.lr import SweepPlan, sweep_plan
from optuna_sm2.lr._plan import CHECK_PASSES
from tests.lr.test_lr_sweep import LAMBDAS, quadratic


def blobs(n_batches: int, batch_size: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n_batches * batch_size,), generator=g)
    x = torch.randn(n_batches * batch_size, 16, generator=g) + 2.0 * F.one_hot(y, 16)[:, :16]
    return list(zip(x.split(batch_size), y.split(batch_size), strict=True))


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


@pytest.mark.parametrize("batch_size", [4, 16, 64, 256])
def test_samples_processed_counts_every_forward_pass(batch_size: int) -> None:
    plan = sweep_plan(1024, batch_size, 0.25, 20)
    batches = blobs(plan.n_batches, batch_size)
    counted = [0]

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        counted[0] += len(y)
        return F.cross_entropy(out, y)

    result = explore_lr(mlp(), loss_fn, batches, plan=plan)
    assert result.samples_processed == counted[0]
    assert result.n_batches <= plan.n_batches
    # the budget holds but for the checks beyond the planned one, which always run
    extra_checks = max(0, len(result.checks) - 1) * CHECK_PASSES
    assert result.samples_processed <= (plan.budget + extra_checks + 2) * batch_size


def test_sweep_with_fewer_lrs_than_the_grid() -> None:
    plan = sweep_plan(27_700, 2048, 0.25, 20)  # the floor: 7 of the 20 LRs
    assert plan.sweep_lrs == 7
    result = explore_lr(mlp(), F.cross_entropy, blobs(plan.n_batches, 32), plan=plan)
    swept = ~np.isnan(result.losses)
    assert swept.sum() == 7 and swept[0] and swept[-1]
    assert np.isnan(result.curvature[~swept]).all()
    assert result.selected_lr in result.lrs  # the checks search the whole grid
    assert len(result.runs) >= 2  # the first comparison of the run-off always runs


def test_the_selection_still_works_at_three_swept_lrs() -> None:
    model, batches, limit = quadratic(20.0)
    result = explore_lr(model, F.mse_loss, batches[:3], plan=SweepPlan(3, 3, 6, 20))
    assert np.count_nonzero(~np.isnan(result.losses)) == 3
    assert limit / 10 <= result.selected_lr <= limit


@pytest.mark.parametrize("lam_max", LAMBDAS)
def test_quadratic_guarantee_holds_with_the_floor_plan(lam_max: float) -> None:
    model, batches, limit = quadratic(lam_max, seed=3)
    if not 1e-3 <= limit <= 1.0:
        pytest.skip("limit outside the grid")
    plan = sweep_plan(128, 128, 0.25, 20)  # full batch: the floor
    result = explore_lr(model, F.mse_loss, batches[: plan.n_batches], plan=plan)
    assert limit / 10 <= result.selected_lr <= limit


def test_too_few_batches_for_the_plan_and_bad_plans() -> None:
    plan = sweep_plan(1000, 100, 0.25, 20)
    with pytest.raises(ValueError, match=r"at least plan\.sweep_lrs=7"):
        explore_lr(mlp(), F.cross_entropy, blobs(5, 8), plan=plan)
    for bad in [(7, 7, 6), SweepPlan(7, 30, 6, 20), SweepPlan(2, 2, 6, 20), "plan"]:
        with pytest.raises(ValueError, match="`plan` must be a SweepPlan"):
            explore_lr(mlp(), F.cross_entropy, blobs(8, 8), plan=bad)  # type: ignore[arg-type]


class _Work(torch.autograd.Function):
    """Advances a clock by the samples of every forward (1 unit each) and backward (2)."""

    clock: ClassVar[list[float]] = [0.0]

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        _Work.clock[0] += x.shape[0]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        _Work.clock[0] += 2 * grad.shape[0]
        return grad


class Costed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(_Work.apply(x.requires_grad_(True)))


@pytest.mark.parametrize("batch_size", [4, 32, 256])
def test_exploration_joules_per_sample_match_a_thorough_epoch(batch_size: int) -> None:
    """Constant power on a clock that counts the work: J per sample of the exploration
    (joules / samples_processed) within 0.8x-1.25x of a plain epoch's at the same batch size."""

    def work() -> float:
        return _Work.clock[0]

    # The tracker reads the same clock as the meter: its windows last as long as the work they
    # simulate, so that 5 W is checked against the power bound over the right seconds.
    tracker = EnergyTracker(SimulatedMeter(power_w=5.0, clock=work), clock=work)
    n = 2048
    data = blobs(n // batch_size, batch_size, seed=1)
    model = Costed()
    with tracker.window() as epoch:
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for x, y in data:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    thorough = epoch.joules / n
    plan = sweep_plan(n, batch_size, 0.25, 20)
    batches = (data * 8)[: plan.n_batches]
    result = explore_lr(model, F.cross_entropy, batches, plan=plan, tracker=tracker)
    ratio = result.energy.joules / result.samples_processed / thorough
    assert 0.8 <= ratio <= 1.25, ratio
    # what the objective used to divide by (the sweep's batches only) overstates it
    swept = sum(len(y) for _, y in batches)
    assert result.energy.joules / swept / thorough > ratio
