"""
optuna-examples' pytorch/pytorch_lightning_simple.py (MIT), ported to SM².

Optuna example that optimizes multi-layer perceptrons using PyTorch Lightning: the network
architecture. SM²'s callback chooses the learning rate of the module's optimizer with its
exploratory sweep at the start of each block of epochs.

Lines marked "SM²:" are the changes docs/your-training-code.md lists for PyTorch Lightning;
lines marked "CI:" only make the script run offline, fast and repeatably in the tests
(scikit-learn's digits instead of FashionMNIST, fewer epochs and trials, seeds). The original's
`--pruning` flag chose MedianPruner or NopPruner; SM² is a pruner, so the flag goes.

    python examples/ported/pytorch_lightning_simple.py
    optuna-sm2 report --storage sqlite:///pytorch_lightning_simple.db \\
        --study pytorch_lightning_simple
"""

from typing import List, Optional

import lightning.pytorch as pl
import optuna
import torch
import torch.nn.functional as F
from packaging import version
from sklearn.datasets import load_digits  # CI: offline data instead of torchvision's
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from optuna_sm2 import SuccessiveHalvingEnergyPruner  # SM²
from optuna_sm2.integration import SM2PruningCallback  # SM²: instead of optuna's callback

if version.parse(pl.__version__) < version.parse("1.6.0"):
    raise RuntimeError("PyTorch Lightning>=1.6.0 is required for this example.")

PERCENT_VALID_EXAMPLES = 1.0  # CI: 0.1 in the original; digits' validation set is 3 batches
BATCHSIZE = 128
CLASSES = 10
EPOCHS = 6  # CI: 10 in the original
N_TRIALS = 8  # CI: 100 trials and a 600 s timeout in the original
SEED = 0  # CI


class Net(nn.Module):
    def __init__(self, dropout: float, output_dims: List[int]) -> None:
        super().__init__()
        layers: List[nn.Module] = []

        input_dim: int = 8 * 8  # CI: digits are 8 x 8 images
        for output_dim in output_dims:
            layers.append(nn.Linear(input_dim, output_dim))
            layers.append(nn.ReLU())
            layers.append(nn.Dropout(dropout))
            input_dim = output_dim

        layers.append(nn.Linear(input_dim, CLASSES))

        self.layers = nn.Sequential(*layers)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        logits = self.layers(data)
        return F.log_softmax(logits, dim=1)


class LightningNet(pl.LightningModule):
    def __init__(self, dropout: float, output_dims: List[int]) -> None:
        super().__init__()
        self.model = Net(dropout, output_dims)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        return self.model(data.view(-1, 8 * 8))  # CI: digits are 8 x 8 images

    def training_step(self, batch: List[torch.Tensor], batch_idx: int) -> torch.Tensor:
        data, target = batch
        output = self(data)
        return F.nll_loss(output, target)

    def validation_step(self, batch: List[torch.Tensor], batch_idx: int) -> None:
        data, target = batch
        output = self(data)
        pred = output.argmax(dim=1, keepdim=True)
        accuracy = pred.eq(target.view_as(pred)).float().mean()
        self.log("val_acc", accuracy)
        self.log("hp_metric", accuracy, on_step=False, on_epoch=True)

    def configure_optimizers(self) -> optim.Optimizer:
        return optim.Adam(self.model.parameters())


class DigitsDataModule(pl.LightningDataModule):  # CI: FashionMNISTDataModule in the original
    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: Optional[str] = None) -> None:
        # CI: scikit-learn's digits (1797 images, shipped with it) instead of FashionMNIST.
        digits = load_digits()
        images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
        labels = torch.tensor(digits.target)
        self.mnist_train = TensorDataset(images[:1437], labels[:1437])
        self.mnist_val = TensorDataset(images[1437:], labels[1437:])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.mnist_train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.mnist_val, batch_size=self.batch_size, shuffle=False)


def objective(trial: optuna.trial.Trial) -> float:
    pl.seed_everything(SEED + trial.number, verbose=False)  # CI: repeatable trials

    # We optimize the number of layers, hidden units in each layer and dropouts.
    n_layers = trial.suggest_int("n_layers", 1, 3)
    dropout = trial.suggest_float("dropout", 0.2, 0.5)
    output_dims = [
        trial.suggest_int("n_units_l{}".format(i), 4, 128, log=True) for i in range(n_layers)
    ]

    model = LightningNet(dropout, output_dims)
    datamodule = DigitsDataModule(batch_size=BATCHSIZE)

    callback = SM2PruningCallback(trial, monitor="val_acc")  # SM²
    trainer = pl.Trainer(
        logger=True,
        limit_val_batches=PERCENT_VALID_EXAMPLES,
        enable_checkpointing=False,
        max_epochs=EPOCHS,
        accelerator="auto",
        devices=1,
        callbacks=[callback],  # SM²: instead of PyTorchLightningPruningCallback(...)
        enable_progress_bar=False,  # CI: quiet logs
    )
    hyperparameters = dict(n_layers=n_layers, dropout=dropout, output_dims=output_dims)
    trainer.logger.log_hyperparams(hyperparameters)
    trainer.fit(model, datamodule=datamodule)
    callback.check_pruned()  # SM²: the callback stops a pruned trial's fit; raise here

    return trainer.callback_metrics["val_acc"].item()


if __name__ == "__main__":
    study = optuna.create_study(
        direction="maximize",
        pruner=SuccessiveHalvingEnergyPruner(rung_steps=[1, 3]),  # SM²: blocks end at rungs
        storage="sqlite:///pytorch_lightning_simple.db",  # SM²: a storage the report reads
        study_name="pytorch_lightning_simple",  # SM²
        sampler=optuna.samplers.TPESampler(seed=SEED),  # CI: a repeatable search
    )
    study.optimize(objective, n_trials=N_TRIALS)

    print("Number of finished trials: {}".format(len(study.trials)))

    print("Best trial:")
    trial = study.best_trial

    print("  Value: {}".format(trial.value))

    print("  Params: ")
    for key, value in trial.params.items():
        print("    {}: {}".format(key, value))
