"""explore_lr with ``batch_loss``: models that return their own loss, dict and multi-input
batches; exactly one of ``loss_fn`` and ``batch_loss``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from optuna_sm2 import explore_lr
from tests.lr.test_lr_sweep import assert_same_state, state_copy


class SelfLoss(nn.Module):
    """Computes its own loss, like a Hugging Face model given labels."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.net(x), labels)


class TwoInputs(nn.Module):
    """Takes a dict of two inputs (tokens and a numeric feature)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(10, 8)
        self.head = nn.Linear(9, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = torch.cat([self.embed(batch["tokens"]), batch["scale"]], dim=1)
        return self.head(h).squeeze(1)


def dict_batches(n: int, size: int = 16) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        tokens = torch.randint(0, 10, (size, 5), generator=g)
        scale = torch.randn(size, 1, generator=g)
        target = (tokens == 3).float().sum(1) + scale.squeeze(1)
        out.append({"tokens": tokens, "scale": scale, "target": target})
    return out


def test_model_that_returns_its_own_loss() -> None:
    torch.manual_seed(0)
    model = SelfLoss()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20 * 16, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    batches = list(zip(x.split(16), y.split(16), strict=True))
    before = state_copy(model)
    result = explore_lr(model, batches=batches, batch_loss=lambda m, b: m(*b))
    assert_same_state(before, state_copy(model))
    assert 1e-3 <= result.selected_lr <= 1.0 and not result.all_unstable
    assert np.isfinite(result.losses).all()
    assert result.samples_processed >= 20 * 16


def test_dict_batches_with_several_inputs() -> None:
    torch.manual_seed(0)
    model = TwoInputs()
    seen: list[Any] = []

    def batch_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.append(batch)
        return F.mse_loss(m(batch), batch["target"])

    result = explore_lr(model, batches=dict_batches(20), batch_loss=batch_loss)
    assert all(isinstance(b, dict) for b in seen)
    assert result.samples_processed == 16 * len(seen)
    assert 1e-3 <= result.selected_lr <= 1.0


def test_batch_loss_is_used_by_the_checks_and_runs_too() -> None:
    calls = [0]

    def batch_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        calls[0] += 1
        return F.mse_loss(m(batch), batch["target"])

    result = explore_lr(TwoInputs(), batches=dict_batches(20), batch_loss=batch_loss)
    assert calls[0] == result.samples_processed // 16
    assert calls[0] > 20 + len(result.checks) * 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of `loss_fn`"),
        ({"loss_fn": F.mse_loss, "batch_loss": lambda m, b: m(b)}, "exactly one of `loss_fn`"),
        ({"batch_loss": "mse"}, "`batch_loss` must be a callable"),
        ({"loss_fn": "mse"}, "`loss_fn` must be a callable"),
    ],
)
def test_exactly_one_loss(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        explore_lr(TwoInputs(), batches=dict_batches(20), **kwargs)


def test_bad_batches() -> None:
    with pytest.raises(ValueError, match="`batches` must be an iterable"):
        explore_lr(TwoInputs(), batch_loss=lambda m, b: m(b))
    with pytest.raises(ValueError, match="pass `batch_loss`"):
        explore_lr(TwoInputs(), F.mse_loss, dict_batches(20))
    with pytest.raises(ValueError, match="hold a tensor"):
        explore_lr(TwoInputs(), batches=[{"a": 1}] * 20, batch_loss=lambda m, b: m(b))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dict_batches_moved_to_the_device() -> None:  # pragma: no cover - no GPU on CI
    model = TwoInputs().cuda()
    devices: set[str] = set()

    def batch_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        devices.update(v.device.type for v in batch.values())
        return F.mse_loss(m(batch), batch["target"])

    explore_lr(model, batches=dict_batches(20), batch_loss=batch_loss)
    assert devices == {"cuda"}
