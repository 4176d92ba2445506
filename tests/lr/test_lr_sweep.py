"""explore_lr on quadratics with a known stability limit, real architectures, bad inputs."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from optuna_sm2 import LRExploration, explore_lr


def quadratic(lam_max: float, *, d: int = 8, seed: int = 0, n: int = 128) -> tuple[Any, ...]:
    """A Linear model with MSE whose Hessian has largest eigenvalue ``lam_max`` exactly.

    Returns the model, 20 full batches (full-batch GD) and the SGD limit ``2 / λ_max``.
    """
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
    spread = torch.rand(d, generator=g, dtype=torch.float64) * 0.95 + 0.05
    spread[0] = 1.0
    x = (q * torch.sqrt(spread * lam_max * n / 2)).float()
    y = torch.randn(n, 1, generator=g)
    hessian = 2.0 / n * x.double().T @ x.double()
    limit = 2.0 / torch.linalg.eigvalsh(hessian).max().item()
    model = nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g))
    return model, [(x, y)] * 20, limit


LAMBDAS = [2.2, 3.0, 5.0, 8.0, 13.0, 20.0, 35.0, 60.0, 100.0, 170.0, 300.0, 500.0, 900.0, 1700.0]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("lam_max", LAMBDAS)
def test_quadratic_never_above_the_limit_and_within_10x(lam_max: float, seed: int) -> None:
    model, batches, limit = quadratic(lam_max, seed=seed)
    assert 1e-3 <= limit <= 1.0
    result = explore_lr(model, F.mse_loss, batches)
    assert result.selected_lr <= limit
    assert result.selected_lr >= limit / 10
    assert not result.all_unstable


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.floats(0.01, 2.99), st.integers(0, 2**16))  # limits inside the grid
def test_quadratic_property(log10_limit_below_one: float, seed: int) -> None:
    model, batches, limit = quadratic(2.0 * 10**log10_limit_below_one, seed=seed)
    result = explore_lr(model, F.mse_loss, batches)
    assert limit / 10 <= result.selected_lr <= limit


def test_every_grid_lr_stable_gives_lr_max() -> None:
    model, batches, limit = quadratic(0.5)
    assert limit > 1.0
    result = explore_lr(model, F.mse_loss, batches)
    assert result.selected_lr == pytest.approx(1.0)
    assert result.diverged_at is None and not result.all_unstable
    assert result.window[1] == pytest.approx(1.0)


def test_none_stable_gives_lr_min_flagged() -> None:
    model, batches, limit = quadratic(5000.0)
    assert limit < 1e-3
    result = explore_lr(model, F.mse_loss, batches)
    assert result.selected_lr == pytest.approx(1e-3)
    assert result.all_unstable
    assert result.diverged_at is not None


class Scripted(nn.Module):
    """Returns a scripted loss per call (through a parameter, so that SGD can step)."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.values = values
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return self.w * 0.0 + value


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_losses_do_not_crash_or_leak(bad: float) -> None:
    model, batches, limit = quadratic(20.0)
    with torch.no_grad():
        threshold = 1.5 * float(F.mse_loss(model(batches[0][0]), batches[0][1]))

    def overflowing(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.mse_loss(out, target)
        return (
            loss if float(loss.detach()) < threshold else loss * bad
        )  # an overflow past a threshold

    result = explore_lr(model, overflowing, batches)
    assert result.diverged_at is not None
    low, high = result.window
    assert high < result.lrs[~np.isfinite(result.losses)].min()
    in_window = (result.lrs >= low) & (result.lrs <= high)
    assert np.isfinite(result.losses[in_window]).all()
    assert np.isfinite(result.curvature[in_window]).all()
    assert result.selected_lr <= limit
    assert not np.isfinite(result.losses).all()


def test_non_finite_initial_loss_flags_everything() -> None:
    model = Scripted([math.nan])
    batches = [(torch.zeros(1), torch.zeros(1))] * 20
    result = explore_lr(model, lambda out, _: out.sum(), batches)
    assert result.all_unstable and result.selected_lr == pytest.approx(1e-3)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


class SmallLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class SmallTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x))).flatten(0, 1)


def cnn_case(g: torch.Generator) -> tuple[nn.Module, Any, list[tuple[torch.Tensor, ...]]]:
    x = torch.randn(24 * 16, 1, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    return SmallCNN(), F.cross_entropy, list(zip(x.split(16), y.split(16), strict=True))


def lstm_case(g: torch.Generator) -> tuple[nn.Module, Any, list[tuple[torch.Tensor, ...]]]:
    x = torch.randn(24 * 16, 6, 3, generator=g)
    y = x.sum(dim=(1, 2)).unsqueeze(1) * 0.3
    return SmallLSTM(), F.mse_loss, list(zip(x.split(16), y.split(16), strict=True))


def transformer_case(g: torch.Generator) -> tuple[nn.Module, Any, list[tuple[torch.Tensor, ...]]]:
    x = torch.randint(0, 16, (24 * 8, 6), generator=g)
    y = torch.roll(x, 1, dims=1).flatten()
    batches = [(xb, yb.reshape(-1)) for xb, yb in zip(x.split(8), y.split(48), strict=True)]
    return SmallTransformer(), F.cross_entropy, batches


def state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        elif isinstance(a[key], dict):
            assert_same_state(a[key], b[key])
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("case", [cnn_case, lstm_case, transformer_case])
def test_architectures_untouched_and_sensible(case: Any) -> None:
    torch.manual_seed(0)
    model, loss_fn, batches = case(torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn(model(batches[0][0]), batches[0][1]).backward()
    optimizer.step()  # momentum buffers now exist
    before_model = state_copy(model)
    before_opt = {
        "state": {k: {n: t.clone() for n, t in v.items()} for k, v in optimizer.state.items()},
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
    }
    rng = torch.get_rng_state()
    result = explore_lr(model, loss_fn, iter(batches), optimizer=optimizer)
    assert_same_state(before_model, state_copy(model))
    after_state = {k: dict(v.items()) for k, v in optimizer.state.items()}
    for key, value in before_opt["state"].items():
        assert_same_state(value, after_state[key])
    after_groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    assert after_groups == before_opt["groups"]
    assert torch.equal(rng, torch.get_rng_state())
    assert model.training
    assert 1e-3 <= result.selected_lr <= 1.0
    assert result.window[0] <= result.window[1]
    assert result.n_batches >= 20 and result.seconds > 0
    assert np.isfinite(result.losses[:5]).all()


def test_buffers_untouched_without_optimizer() -> None:
    model, loss_fn, batches = cnn_case(torch.Generator().manual_seed(1))
    model.eval()
    before = state_copy(model)
    explore_lr(model, loss_fn, batches, optimizer_factory=lambda p, lr: torch.optim.Adam(p, lr))
    assert_same_state(before, state_copy(model))
    assert not model.training


def test_adam_state_untouched_and_dataloader_batches() -> None:
    model, loss_fn, batches = lstm_case(torch.Generator().manual_seed(3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in batches[:2]:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    before = copy.deepcopy(optimizer.state_dict())
    before_model = state_copy(model)
    data = torch.utils.data.TensorDataset(
        torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    )
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    result = explore_lr(model, loss_fn, loader, optimizer=optimizer, n_lrs=12)
    assert_same_state(before["state"], optimizer.state_dict()["state"])
    assert before["param_groups"] == optimizer.state_dict()["param_groups"]
    assert_same_state(before_model, state_copy(model))
    assert 1e-3 <= result.selected_lr <= 1.0 and result.n_batches == len(loader)


@dataclass
class FakeWindow:
    joules: float = math.nan
    seconds: float = math.nan
    valid: bool = False


class FakeTracker:
    def __init__(self) -> None:
        self.opened = 0

    @contextmanager
    def window(self) -> Iterator[FakeWindow]:
        self.opened += 1
        w = FakeWindow()
        yield w
        w.joules, w.seconds, w.valid = 12.5, 0.5, True


def test_tracker_window_is_returned() -> None:
    model, batches, _ = quadratic(20.0)
    tracker = FakeTracker()
    result = explore_lr(model, F.mse_loss, batches, tracker=tracker)
    assert tracker.opened == 1
    assert isinstance(result.energy, FakeWindow) and result.energy.joules == 12.5
    assert explore_lr(model, F.mse_loss, batches).energy is None


def test_many_batches_cycle_the_grid() -> None:
    model, batches, limit = quadratic(20.0)
    result = explore_lr(model, F.mse_loss, batches * 3, n_lrs=10)
    assert result.n_batches >= 30
    assert result.selected_lr <= limit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr_min": 0.0}, "lr_min"),
        ({"lr_min": -1.0}, "lr_min"),
        ({"lr_min": 1.0, "lr_max": 1.0}, "lr_max"),
        ({"lr_min": 0.1, "lr_max": 0.01}, "lr_max"),
        ({"n_lrs": 2}, "n_lrs"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    model, batches, _ = quadratic(20.0)
    with pytest.raises(ValueError, match=message):
        explore_lr(model, F.mse_loss, batches, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "linear"}, r"`model` must be a torch.nn.Module, got 'linear'"),
        ({"model": None}, r"`model` must be a torch.nn.Module, got None"),
        ({"optimizer_factory": "sgd"}, r"`optimizer_factory` must be a callable \(params, lr\)"),
        ({"tracker": object()}, r"`tracker` must have a callable window\(\)"),
        ({"tracker": "energy"}, r"`tracker` must have a callable window\(\)"),
        ({"device": 5}, r"`device` must be a str or torch.device, got 5"),
        ({"device": "gpu0"}, r"`device` 'gpu0' is not a torch device"),
        ({"device": "cuda:99"}, r"`device` is 'cuda:99', but torch sees"),
    ],
)
def test_bad_parts_are_refused_before_anything_trains(
    kwargs: dict[str, Any], message: str
) -> None:
    model, batches, _ = quadratic(20.0)
    tracker = FakeTracker()
    stream = iter(batches)
    arguments: dict[str, Any] = {
        "model": model,
        "loss_fn": F.mse_loss,
        "batches": stream,
        "tracker": tracker,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        explore_lr(**arguments)
    assert tracker.opened == 0
    assert len(list(stream)) == len(batches)  # no batch drawn


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda", 1)])
def test_cuda_without_cuda_is_refused(device: str | torch.device) -> None:
    model, batches, _ = quadratic(20.0)
    with pytest.raises(ValueError, match=r"`device` .* torch sees no CUDA device"):
        explore_lr(model, F.mse_loss, batches, device=device)


def test_bad_loss_and_too_few_batches() -> None:
    model, batches, _ = quadratic(20.0)
    with pytest.raises(ValueError, match="loss_fn"):
        explore_lr(model, "mse", batches)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least n_lrs=20"):
        explore_lr(model, F.mse_loss, [])
    with pytest.raises(ValueError, match="at least n_lrs=20"):
        explore_lr(model, F.mse_loss, iter(batches[:5]))
    with pytest.raises(ValueError, match=r"\(inputs, targets\) pair"):
        explore_lr(model, F.mse_loss, [batches[0][0]] * 20)


def test_plot_with_agg() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    model, batches, _ = quadratic(20.0)
    result = explore_lr(model, F.mse_loss, batches)
    assert isinstance(result, LRExploration)
    ax = result.plot()
    assert ax.get_xscale() == "log"
    matplotlib.pyplot.close("all")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_model_untouched() -> None:  # pragma: no cover - no GPU on CI
    model, loss_fn, batches = cnn_case(torch.Generator().manual_seed(2))
    model = model.cuda()
    before = state_copy(model)
    result = explore_lr(model, loss_fn, batches)
    assert_same_state(before, state_copy(model))
    assert 1e-3 <= result.selected_lr <= 1.0
