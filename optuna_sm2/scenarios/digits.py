"""The demo workload: scikit-learn's handwritten digits and a small MLP.

Used by ``optuna-sm2 demo`` and the scripts in ``examples/``. The data ships inside the
scikit-learn wheel (1,797 8x8 images), so nothing is downloaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from optuna_sm2.training import SM2Objective

if TYPE_CHECKING:
    import optuna

DataPair = tuple[torch.Tensor, torch.Tensor]


def load_digits(valid_share: float = 0.2, seed: int = 0) -> tuple[DataPair, DataPair]:
    """Digits as float pixel tensors in [0, 1] and integer labels, split train / validation."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the demo data comes with scikit-learn: pip install 'optuna-sm2[demo]'"
        ) from exc
    if not 0.0 < valid_share < 1.0:
        raise ValueError(f"`valid_share` must be in (0, 1), got {valid_share!r}.")
    bunch = sklearn_digits()
    inputs = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    targets = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    n_valid = int(len(targets) * valid_share)
    valid, train = order[:n_valid], order[n_valid:]
    return (inputs[train], targets[train]), (inputs[valid], targets[valid])


def build_mlp(trial: optuna.trial.Trial | None = None, hidden: int = 64) -> nn.Module:
    """A 64 -> hidden -> 10 MLP; with a trial, ``hidden`` is searched in {32, 64, 128}."""
    if trial is not None:
        hidden = int(trial.suggest_categorical("hidden", [32, 64, 128]))
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def accuracy(model: nn.Module, data: DataPair) -> float:
    """Share of correctly classified samples."""
    inputs, targets = data
    return float((model(inputs).argmax(dim=1) == targets).float().mean().item())


DEMO_BATCH_SIZES = (4, 8, 16, 32, 64, 128, 256, 512)


def demo_objective(
    *,
    epochs_per_rung: int = 5,
    final_epochs: int = 10,
    n_lrs: int = 20,
    device: str | torch.device | None = None,
    checkpoint_dir: str | None = None,
) -> SM2Objective:
    """The objective of ``optuna-sm2 demo`` and ``optuna-sm2 worker --scenario demo``.

    An MLP (64 hidden units) on digits, the paper's 8 batch sizes from 4 to 512, accuracy.
    """
    train, valid = load_digits()
    return SM2Objective(
        lambda trial: build_mlp(hidden=64),
        train,
        valid,
        torch.nn.functional.cross_entropy,
        accuracy,
        batch_sizes=DEMO_BATCH_SIZES,
        n_lrs=n_lrs,
        epochs_per_rung=epochs_per_rung,
        final_epochs=final_epochs,
        device=device,
        checkpoint_dir=checkpoint_dir,
        metric_name="accuracy",
    )
