"""A tiny real LightningModule, its data and a quiet CPU trainer, for the integration tests."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

N_FEATURES = 8


def loaders(n: int = 256, batch_size: int = 16, seed: int = 0) -> tuple[DataLoader[Any], ...]:
    """A separable two-class problem: training and validation loaders."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_FEATURES, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    cut = n * 3 // 4
    train = DataLoader(TensorDataset(x[:cut], y[:cut]), batch_size=batch_size, shuffle=True)
    valid = DataLoader(TensorDataset(x[cut:], y[cut:]), batch_size=64)
    return train, valid


class TinyClassifier(pl.LightningModule):
    """A linear classifier that logs ``train_loss`` and ``val_acc``."""

    def __init__(self, lr: float = 0.05, momentum: float = 0.0) -> None:
        super().__init__()
        self.lr, self.momentum = lr, momentum
        self.layer = torch.nn.Linear(N_FEATURES, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)


def trainer(callback: pl.Callback, max_epochs: int, **kwargs: Any) -> pl.Trainer:
    """A quiet CPU trainer."""
    return pl.Trainer(
        max_epochs=max_epochs,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )
