"""Ours vs fastai's "valley" vs torch-lr-finder's "steepest gradient" on recorded sweeps.

Records one ``explore_lr`` sweep (paper grid: 20 LRs over 1e-3 .. 1, plain SGD, two cycles)
for a small CNN, LSTM and Transformer on synthetic data, applies the two reference rules to
the same per-LR losses, then trains a fresh copy at each suggested LR to see what it gives.
Also prints how far below the stability limit the quadratic test cases land.

    .venv/bin/python benchmarks/lr_suggestions.py

CPU only, about a minute. The figures in docs/lr-sweep.md are this script's output.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from optuna_sm2 import LRExploration, explore_lr
from optuna_sm2.lr._selection import divergence_index

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.lr.test_lr_sweep import LAMBDAS, quadratic  # the test suite's exact cases

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def usable(losses: np.ndarray) -> np.ndarray:
    """The losses before the first non-finite or exploded one (what both tools look at)."""
    stop = divergence_index(losses)
    return losses[: len(losses) if stop is None else stop]


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's rule: the middle of the longest decreasing run (subsequence) of the loss."""
    y = usable(losses)
    run = np.ones(len(y), dtype=int)  # longest decreasing subsequence ending at i
    for i in range(1, len(y)):
        run[i] = 1 + max((run[j] for j in range(i) if y[j] > y[i]), default=0)
    end = int(np.argmax(run))
    start = end - int(run[end]) + 1
    return float(lrs[start + (end - start) // 2])


def steepest(lrs: np.ndarray, losses: np.ndarray) -> float:
    """torch-lr-finder's rule: the LR where the loss falls fastest (most negative gradient)."""
    y = usable(losses)
    return float(lrs[int(np.argmin(np.gradient(y)))]) if len(y) >= 2 else float(lrs[0])


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class LSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 32, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.randn(16, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)
        self.mask = nn.Transformer.generate_square_subsequent_mask(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(x) + self.pos, mask=self.mask, is_causal=True)
        return self.head(h).flatten(0, 1)


def cnn_data(g: torch.Generator, n: int) -> Batches:
    """Ten classes of 16x16 colour blobs at class-dependent positions, with noise."""
    y = torch.randint(0, 10, (n * 32,), generator=g)
    x = torch.randn(n * 32, 3, 16, 16, generator=g) * 0.8
    rows, cols = (y // 5) * 6 + 3, (y % 5) * 3 + 1
    for i in range(len(y)):
        x[i, y[i] % 3, rows[i] : rows[i] + 4, cols[i] : cols[i] + 3] += 2.0
    return list(zip(x.split(32), y.split(32), strict=True))


def lstm_data(g: torch.Generator, n: int) -> Batches:
    """Next value of a noisy daily-and-weekly periodic load curve (household-power-like)."""
    t = torch.arange(n * 32 + 24, dtype=torch.float32)
    load = torch.sin(t * 2 * torch.pi / 24) + 0.5 * torch.sin(t * 2 * torch.pi / 168)
    load = load + 0.1 * torch.randn(len(t), generator=g)
    feats = torch.stack([load, torch.sin(t / 24), torch.cos(t / 24), torch.ones_like(t)], 1)
    x = torch.stack([feats[i : i + 24] for i in range(n * 32)])
    y = load[24 : 24 + n * 32].unsqueeze(1)
    order = torch.randperm(n * 32, generator=g)
    return list(zip(x[order].split(32), y[order].split(32), strict=True))


def lm_data(g: torch.Generator, n: int) -> Batches:
    """Sequences from a fixed random bigram table (an LM with something to learn)."""
    table = torch.randint(0, 32, (32, 3), generator=g)
    seq = torch.zeros(n * 16, 17, dtype=torch.long)
    seq[:, 0] = torch.randint(0, 32, (n * 16,), generator=g)
    for i in range(16):
        pick = torch.randint(0, 3, (n * 16,), generator=g)
        seq[:, i + 1] = table[seq[:, i], pick]
    x, y = seq[:, :16], seq[:, 1:].reshape(n * 16, 16)
    return [(xb, yb.reshape(-1)) for xb, yb in zip(x.split(16), y.split(16), strict=True)]


CASES: dict[str, tuple[Callable[[], nn.Module], Any, Callable[..., Batches]]] = {
    "CNN (BatchNorm, 10 classes)": (CNN, F.cross_entropy, cnn_data),
    "LSTM (2 layers, forecasting)": (LSTM, F.mse_loss, lstm_data),
    "Transformer (2 layers, LM)": (TinyLM, F.cross_entropy, lm_data),
}


def train_loss(model: nn.Module, loss_fn: Any, batches: Batches, lr: float) -> float:
    """Mean loss of the last 20 of ``len(batches)`` plain-SGD steps at ``lr`` (inf: diverged)."""
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    seen = []
    for x, y in batches:
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            return float("inf")
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(float(loss.detach()))
    return float(np.mean(seen[-20:]))


def architectures(lr_max: float) -> None:
    print(f"LR grid: 20 values log-spaced over 1e-3 .. {lr_max:g}, plain SGD, 40 batches.\n")
    print(
        "| model | ours (window) | valley | steepest | train loss after 150 SGD steps: "
        "ours / valley / steepest | sweep: batches, checks, s |"
    )
    print("|---|---|---|---|---|---|")
    for name, (build, loss_fn, data) in CASES.items():
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        model, explore, train = build(), data(g, 40), data(g, 150)
        res: LRExploration = explore_lr(model, loss_fn, explore, lr_max=lr_max)
        picks = [res.selected_lr, valley(res.lrs, res.losses), steepest(res.lrs, res.losses)]
        after = [train_loss(model, loss_fn, train, lr) for lr in picks]
        lo, hi = res.window
        print(
            f"| {name} | {picks[0]:.3g} ({lo:.3g}..{hi:.3g}) | {picks[1]:.3g} | {picks[2]:.3g} "
            f"| {' / '.join(f'{a:.3g}' for a in after)} "
            f"| {res.n_batches}, {len(res.checks)}, {res.seconds:.1f} |"
        )
        curve = ", ".join(f"{v:.3g}" for v in res.losses)
        print(
            f"<!-- {name} losses: {curve}; diverged_at={res.diverged_at:.3g} -->"
            if res.diverged_at
            else f"<!-- {name} losses: {curve}; no divergence -->"
        )


def quadratics() -> None:
    for label, lams, seeds in (
        ("test cases (tests/test_lr_sweep.py)", LAMBDAS, (0, 1)),
        ("dense: 60 λ_max log-spaced 2..2000, 3 seeds", np.geomspace(2.0, 2000.0, 60), (0, 1, 2)),
    ):
        ratios, checks, above = [], [], 0
        for lam in lams:
            for seed in seeds:
                model, batches, limit = quadratic(float(lam), seed=seed)
                if not 1e-3 <= limit <= 1.0:
                    continue
                res = explore_lr(model, F.mse_loss, batches)
                ratios.append(res.selected_lr / limit)
                checks.append(len(res.checks))
                above += res.selected_lr > limit
        r = np.array(ratios)
        print(
            f"| {label} | {len(r)} | {r.min():.3f} | {np.median(r):.3f} | {r.max():.3f} "
            f"| {above} | {np.mean(checks):.1f} (max {max(checks)}) |"
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    for lr_max in (1.0, 30.0):
        architectures(lr_max)
        print()
    print(
        "| quadratics, full-batch GD | cases | min selected/limit | median | max | above "
        "| checks per sweep |"
    )
    print("|---|---|---|---|---|---|---|")
    quadratics()
