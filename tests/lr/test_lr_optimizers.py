"""The sweep knows the optimizer: its default grid, the user's LR as the run-off's incumbent,
the horizon rule of the run-off, and the optimizers it refuses (issue 18)."""

from __future__ import annotations

import functools

import numpy as np
import optuna
import pytest
import torch
from torch.nn import functional as F

from optuna_sm2 import SuccessiveHalvingEnergyPruner, explore_lr
from optuna_sm2.lr import _selection as sel
from optuna_sm2.lr import sweep_plan
from optuna_sm2.lr._grid import configured_lr, default_range, grid_range
from tests.support.tiny import tiny_objective

digits = pytest.importorskip("optuna_sm2.scenarios.digits")


def _params() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(2, 1).parameters())


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        (None, (1e-3, 1.0)),
        (torch.optim.SGD(_params(), lr=0.01, momentum=0.9, nesterov=True), (1e-3, 1.0)),
        (torch.optim.SGD(_params(), lr=5.0), (1e-3, 50.0)),
        (torch.optim.SGD(_params(), lr=1e-5), (1e-6, 1.0)),
        (torch.optim.Adam(_params(), lr=1e-3), (1e-4, 0.1)),
        (torch.optim.AdamW(_params(), lr=3e-4), (3e-5, 0.03)),
        (torch.optim.RMSprop(_params(), lr=1e-2), (1e-3, 1.0)),
        (torch.optim.Adadelta(_params()), (0.1, 1.0)),
    ],
)
def test_default_grid_follows_the_optimizer_and_its_lr(
    optimizer: torch.optim.Optimizer | None, expected: tuple[float, float]
) -> None:
    user = configured_lr(None, optimizer, optimizer)
    assert default_range(optimizer, user) == pytest.approx(expected)


def test_configured_lr_of_a_factory_and_an_explicit_range() -> None:
    adam = torch.optim.Adam(_params())
    assert configured_lr(torch.optim.Adam, None, adam) == 1e-3  # the factory's own default
    assert configured_lr(functools.partial(torch.optim.Adam, lr=3e-4), None, adam) == 3e-4
    assert configured_lr(lambda p, lr: torch.optim.Adam(p, lr), None, adam) == 1e-3  # class
    sgd = torch.optim.SGD(_params(), lr=0.5)
    assert configured_lr(lambda p, lr: torch.optim.SGD(p, lr), None, sgd) is None
    sgd.param_groups[0]["lr"] = 0.2  # what SM² sets does not change what the user configured
    assert configured_lr(None, sgd, sgd) == 0.5
    assert grid_range(1e-4, None, adam, 1e-3) == (1e-4, 0.1)  # a given end wins
    assert grid_range(None, 1e-6, adam, 1e-3) == pytest.approx((1e-9, 1e-6))
    assert grid_range(None, 1e-2, adam, 1e-3) == pytest.approx((1e-4, 1e-2))
    assert grid_range(0.5, None, None, None) == pytest.approx((0.5, 1.0))
    assert grid_range(2.0, None, None, None) == pytest.approx((2.0, 2000.0))


def _digits_batches(batch_size: int, n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    (x, y), _ = digits.load_digits()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return [
        (x[order[i : i + batch_size]], y[order[i : i + batch_size]])
        for i in range(0, n * batch_size, batch_size)
    ]


def test_a_pick_that_trains_worse_than_the_users_lr_gives_way() -> None:
    rng = np.random.default_rng(1)
    noise = 0.02 * rng.normal(size=6)
    user = 2.3 - 0.08 * np.arange(6) + noise  # the user's LR trains
    dead = np.array([2.3, 4.1, 3.9, 3.6, 3.5, 3.6]) + noise  # above its start: not training
    assert sel.user_lr_wins(user, dead)
    assert not sel.user_lr_wins(user, user - 0.1)  # a pick that trains better stays
    assert not sel.user_lr_wins(user, user + 0.005)  # within the 1 % margin: the pick stays
    faster = 2.3 - 0.12 * np.arange(6) + noise
    assert not sel.user_lr_wins(user, faster)


@pytest.mark.parametrize("seed", [0, 1])
def test_adam_sweeps_around_the_users_lr_and_runs_it(seed: int) -> None:
    """Adam at 1e-3 on the digits MLP: the grid around it, and the user's LR run in the
    run-off (the first comparison); the pick is a grid LR or the user's."""
    torch.manual_seed(seed)
    model = digits.build_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    plan = sweep_plan(1437, 32, 0.25, 20)
    result = explore_lr(
        model,
        F.cross_entropy,
        _digits_batches(32, plan.n_batches, seed),
        plan=plan,
        optimizer=optimizer,
    )
    assert result.lrs[0] == pytest.approx(1e-4) and result.lrs[-1] == pytest.approx(0.1)
    assert result.incumbent_lr == 1e-3
    assert any(lr == 1e-3 for lr, _ in result.runs)  # the incumbent was run
    assert result.selected_lr == 1e-3 or result.selected_lr in result.lrs


def test_a_users_lr_that_is_clearly_worse_is_replaced() -> None:
    """Plain SGD configured at 1e-3 on a linear regression: a stable LR 100x larger trains far
    better within the run-off, and replaces it (still below the stability limit)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 512, 32)] * 3
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    result = explore_lr(model, F.mse_loss, batches, optimizer=optimizer)
    assert result.incumbent_lr == 1e-3
    assert result.selected_lr > 1e-2


def test_an_incumbent_outside_an_explicit_range_is_no_candidate() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    batches = [(x[i : i + 32], x[i : i + 32].sum(1, keepdim=True)) for i in range(0, 256, 32)] * 3
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    result = explore_lr(model, F.mse_loss, batches, optimizer=optimizer, lr_min=1e-3, lr_max=1.0)
    assert result.incumbent_lr is None and 1e-3 <= result.selected_lr <= 1.0


def test_optimizers_the_sweep_cannot_use_are_refused_naming_them() -> None:
    model = torch.nn.Linear(2, 1)
    batches = [(torch.randn(4, 2), torch.randn(4, 1))] * 20
    with pytest.raises(ValueError, match=r"LBFGS.*closure"):
        explore_lr(model, F.mse_loss, batches, optimizer=torch.optim.LBFGS(model.parameters()))

    class Fixed(torch.optim.SGD):
        def __init__(self, params: object, scale: float) -> None:
            super().__init__(params, lr=0.1 * scale)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match=r"Fixed.*re-created"):
        explore_lr(model, F.mse_loss, batches, optimizer=Fixed(model.parameters(), 1.0))
    with pytest.raises(ValueError, match="optimizer_factory"):
        explore_lr(model, F.mse_loss, batches, optimizer_factory=lambda p, lr: None)


def test_a_larger_lr_that_is_catching_up_keeps_its_place() -> None:
    t = np.arange(24.0)
    rng = np.random.default_rng(0)
    noise = 0.01 * rng.normal(size=24)
    small = 2.0 - 0.02 * t + noise  # falls first, then slowly
    large = 2.0 - 0.02 * t + 0.3 - 0.03 * np.maximum(t - 12, 0) + noise  # behind, catching up
    large[:12] = 2.3 - 0.005 * t[:12]
    assert sel.clearly_lower(small, large)  # ahead at the end of the run...
    assert not sel.lead_lasts(small, large)  # ...but the larger LR overtakes within as long
    assert not sel.trains_better(small, large)
    stalled = np.full(24, 2.3) + noise  # a larger LR that does not train: no protection
    assert sel.trains_better(small, stalled)
    outlier = small.copy()
    outlier[-2] += 3.0  # one bad minibatch does not tilt the trend
    assert sel.lead_lasts(outlier, stalled)


def test_the_objective_sweeps_with_its_factorys_optimizer_and_grid() -> None:
    """SM2Objective with Adam as the factory: the default grid is Adam's (stored as null ends
    in the schedule), and every LR a trial trained at lies in it or is Adam's 1e-3."""
    torch.manual_seed(0)
    objective = tiny_objective(optimizer_factory=torch.optim.Adam, n_lrs=20)
    study = optuna.create_study(direction="maximize", pruner=SuccessiveHalvingEnergyPruner())
    study.optimize(objective, n_trials=2)
    schedule = study.user_attrs["sm2.schedule"]
    assert schedule["lr_min"] is None and schedule["lr_max"] is None
    for trial in study.trials:
        assert 1e-4 * (1 - 1e-9) <= trial.user_attrs["sm2.stable_lr"] <= 0.1 * (1 + 1e-9)
