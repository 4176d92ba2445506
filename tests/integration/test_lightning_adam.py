"""optuna-examples' PyTorch Lightning script, ported to ``SM2PruningCallback`` as
``docs/your-training-code.md`` says: Adam at ``lr=1e-3`` in ``configure_optimizers``, the
callback with its default arguments, offline data (scikit-learn's digits).

Issue 18: the sweep used to replace Adam's 1e-3 with 0.06 to 0.34 and leave every trial at
chance. Each trial must now end within 2 % of the accuracy the same trial reaches with
``explore=False`` (the user's own LR throughout).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import optuna
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from optuna_sm2.integration import SM2PruningCallback
from tests.support.lightning import trainer

digits = pytest.importorskip("optuna_sm2.scenarios.digits")
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*treespec:FutureWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

EPOCHS = 6
"""Two blocks of the callback's default 5 epochs: two explorations."""
BATCHSIZE = 128
N_TRIALS = 3


class LightningNet(pl.LightningModule):
    """The example's ``LightningNet``: an MLP whose depth, widths and dropout the trial
    suggests, trained with Adam at 1e-3."""

    def __init__(self, dropout: float, output_dims: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 64
        for dims in output_dims:
            layers += [nn.Linear(width, dims), nn.ReLU(), nn.Dropout(dropout)]
            width = dims
        layers.append(nn.Linear(width, 10))
        self.layers = nn.Sequential(*layers)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.layers(data), dim=1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        data, target = batch
        return nn.functional.nll_loss(self(data), target)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        data, target = batch
        accuracy = (self(data).argmax(dim=1) == target).float().mean()
        self.log("val_acc", accuracy)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _loaders() -> tuple[DataLoader[Any], DataLoader[Any]]:
    (x, y), (vx, vy) = digits.load_digits()
    train = DataLoader(TensorDataset(x, y), batch_size=BATCHSIZE, shuffle=True)
    return train, DataLoader(TensorDataset(vx, vy), batch_size=BATCHSIZE)


def _fit(trial: optuna.trial.Trial, explore: bool) -> float:
    n_layers = trial.suggest_int("n_layers", 1, 3)
    dropout = trial.suggest_float("dropout", 0.0, 0.3)
    output_dims = [trial.suggest_int(f"n_units_l{i}", 16, 128, log=True) for i in range(n_layers)]
    pl.seed_everything(trial.number, verbose=False)
    model = LightningNet(dropout, output_dims)
    callback = (
        SM2PruningCallback(trial, monitor="val_acc")
        if explore
        else SM2PruningCallback(trial, monitor="val_acc", explore=False)
    )
    fit = trainer(callback, EPOCHS)
    fit.fit(model, *_loaders())
    callback.check_pruned()
    return float(fit.callback_metrics["val_acc"].item())


def _study(explore: bool) -> tuple[optuna.Study, list[float]]:
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.NopPruner(),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(lambda trial: _fit(trial, explore), n_trials=N_TRIALS)
    return study, [t.value for t in study.trials if t.value is not None]


def test_adam_trials_train_as_well_as_without_the_sweep() -> None:
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        swept, swept_values = _study(explore=True)
        plain, plain_values = _study(explore=False)  # the same seed: the same trials
    finally:
        logger.setLevel(level)
    assert [t.params for t in swept.trials] == [t.params for t in plain.trials]
    assert len(swept_values) == len(plain_values) == N_TRIALS
    for trial, ours, theirs in zip(swept.trials, swept_values, plain_values, strict=True):
        assert theirs > 0.5, (trial.params, theirs)  # the script trains at Adam's 1e-3
        assert ours >= theirs - 0.02, (trial.params, trial.user_attrs, ours, theirs)
        assert 1e-4 <= trial.user_attrs["sm2.stable_lr"] <= 0.1  # Adam's default grid
