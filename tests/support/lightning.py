"""A tiny real LightningModule, its data and a quiet CPU trainer, for the integration tests, in
each of Lightning's namespaces: ``lightning.pytorch`` (the current package) and
``pytorch_lightning`` (its older name)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import lightning.pytorch as L
import pytorch_lightning as P
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


class _Tiny:
    """A linear classifier that logs ``train_loss`` and ``val_acc`` (the body of both
    namespaces' modules)."""

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
        accuracy = (self(x).argmax(1) == y).float().mean()
        self.log("val_acc", accuracy)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)


class TinyClassifier(_Tiny, L.LightningModule):
    """The tiny classifier as a ``lightning.pytorch`` module."""


class LegacyTinyClassifier(_Tiny, P.LightningModule):
    """The tiny classifier as a ``pytorch_lightning`` module."""


NAMESPACES: dict[str, tuple[ModuleType, type[_Tiny]]] = {
    "lightning.pytorch": (L, TinyClassifier),
    "pytorch_lightning": (P, LegacyTinyClassifier),
}
"""Each namespace: its module and its tiny classifier."""


def trainer(callback: Any, max_epochs: int, namespace: ModuleType = L, **kwargs: Any) -> Any:
    """A quiet CPU trainer of ``namespace``."""
    return namespace.Trainer(
        max_epochs=max_epochs,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )
