"""``SM2PruningCallback`` with a real tiny LightningModule on the CPU, with Trainers of both of
Lightning's namespaces (``lightning.pytorch`` and ``pytorch_lightning``)."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import optuna
import pytest
import torch

from optuna_sm2 import EnergyTracker, SuccessiveHalvingEnergyPruner, attrs
from optuna_sm2.cli import main
from optuna_sm2.energy import EnergyReadError
from optuna_sm2.integration import SM2PruningCallback
from optuna_sm2.integration._module_sweep import sweep_module
from optuna_sm2.lr import sweep_plan
from optuna_sm2.lr._plan import FLOOR
from optuna_sm2.training._phases import SweepSettings
from tests.support.lightning import NAMESPACES, TinyClassifier, loaders, trainer
from tests.support.meters import ScriptedMeter, StepMeter

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec:FutureWarning")

WATTS = 10.0
"""Every window of a StepMeter(WATTS) holds WATTS joules."""


@pytest.fixture(autouse=True)
def _quiet_lightning() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in NAMESPACES]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def _objective(
    tracker: EnergyTracker,
    callbacks: list[SM2PruningCallback],
    max_epochs: int = 4,
    namespace: str = "lightning.pytorch",
) -> Any:
    module, classifier = NAMESPACES[namespace]

    def objective(trial: optuna.trial.Trial) -> float:
        explore = trial.suggest_categorical("explore", [True, False])
        lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
        pl.seed_everything(trial.number, verbose=False)
        callback = SM2PruningCallback(
            trial, monitor="val_acc", explore=explore, n_lrs=5, tracker=tracker
        )
        callbacks.append(callback)
        fit = trainer(callback, max_epochs, module)
        fit.fit(classifier(lr=lr), *loaders())
        callback.check_pruned()
        return float(fit.callback_metrics["val_acc"].item())

    return objective


@pytest.mark.parametrize("namespace", list(NAMESPACES))
def test_a_study_in_sqlite_books_energy_prunes_and_reports(
    namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same callback class with a Trainer of either namespace."""
    storage = f"sqlite:///{tmp_path / 'lightning.db'}"
    study = optuna.create_study(
        study_name="lightning",
        storage=storage,
        direction="maximize",
        pruner=SuccessiveHalvingEnergyPruner(rung_steps=[1, 3], alpha=1.0),
    )
    # Trial 0 explores; trial 1 trains at a tiny LR without exploring and is worse at rung 0.
    study.enqueue_trial({"explore": True, "lr": 0.05})
    study.enqueue_trial({"explore": False, "lr": 1e-5})
    callbacks: list[SM2PruningCallback] = []
    tracker = EnergyTracker(StepMeter(WATTS))
    study.optimize(_objective(tracker, callbacks, namespace=namespace), n_trials=2)

    complete, pruned = study.trials
    assert complete.state == optuna.trial.TrialState.COMPLETE
    assert pruned.state == optuna.trial.TrialState.PRUNED
    assert sorted(complete.intermediate_values) == [0, 1, 2, 3]
    assert sorted(pruned.intermediate_values) == [0, 1]  # stopped at its first rung
    assert pruned.system_attrs[attrs.PRUNED_AT_EPOCH] == 1
    assert attrs.PRUNED_AT_EPOCH not in complete.system_attrs
    assert pruned.intermediate_values[1] < complete.intermediate_values[1]

    # Blocks end at the rungs (1, 3): trial 0 explores at epochs 0 and 2.
    user = complete.user_attrs
    assert user[attrs.EXPLORATIONS] == 2
    assert user[attrs.EPOCHS_TRAINED] == 4
    assert user[attrs.ENERGY_TRAIN_J] == pytest.approx(4 * WATTS)
    assert user[attrs.ENERGY_EVAL_J] == pytest.approx(5 * WATTS)  # sanity check + 4
    assert user[attrs.ENERGY_EXPLORE_J] == pytest.approx(2 * WATTS)
    assert user[attrs.ENERGY_TOTAL_J] == pytest.approx(11 * WATTS)
    assert user[attrs.ENERGY_PER_EPOCH_J] == pytest.approx(WATTS)
    assert user[attrs.ENERGY_PER_EPOCH_SPREAD] == pytest.approx(0.0)
    assert user[attrs.ENERGY_SOURCE] == "simulated"
    assert user[attrs.ENERGY_INVALID_WINDOWS] == 0
    assert user[attrs.STABLE_LR] == pytest.approx(callbacks[0].stable_lr)
    lo, hi = user[attrs.LR_WINDOW]
    assert 1e-3 <= lo <= hi <= 1.0
    # Without exploration: no LR is claimed stable, nothing booked as exploration.
    assert attrs.STABLE_LR not in pruned.user_attrs
    assert attrs.ENERGY_EXPLORE_J not in pruned.user_attrs
    assert pruned.user_attrs[attrs.ENERGY_TOTAL_J] == pytest.approx(5 * WATTS)  # 2 + 3

    capsys.readouterr()
    assert main(["report", "--storage", storage, "--study", "lightning", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["energy_sources"] == ["simulated"]
    assert [t["energy_total_j"] for t in summary["trials"]] == pytest.approx(
        [11 * WATTS, 5 * WATTS]
    )
    assert summary["total_energy_j"] == pytest.approx(16 * WATTS)


def test_the_sweep_sets_the_optimizer_lr_and_leaves_the_module_alone() -> None:
    study = optuna.create_study(direction="maximize")
    callback = SM2PruningCallback(
        study.ask(), "val_acc", n_lrs=5, tracker=EnergyTracker(StepMeter(WATTS))
    )
    module = TinyClassifier(lr=0.05)
    fit = trainer(callback, 1)
    fit.fit(module, *loaders())
    assert callback.stable_lr is not None
    optimizer = fit.optimizers[0]
    assert optimizer.param_groups[0]["lr"] == callback.stable_lr

    weights = {k: v.clone() for k, v in module.state_dict().items()}
    logged = dict(fit.callback_metrics)
    rng = torch.random.get_rng_state()
    found = sweep_module(fit, module, optimizer, SweepSettings(1e-3, 1.0, 5, 0.25))
    assert found.n_batches == sweep_plan(12, 1, 0.25, 5).n_batches  # 192 samples, batch 16
    for key, value in module.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert dict(fit.callback_metrics) == logged
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert module.trainer is fit


@pytest.mark.parametrize(("n", "batch_size"), [(2000, 4), (2000, 16), (256, 64)])
def test_the_sweep_spends_the_plan_of_an_epochs_batches(n: int, batch_size: int) -> None:
    """Planned by batches: at most ``explore_fraction`` of the epoch's batch passes plus one
    (here the LR grid's one check suffices), or the floor where that is more; the loader is
    cycled where an epoch has fewer batches than the sweep needs (256 samples at batch 64).
    Seeded: how many checks the LR search takes depends on the model's initial weights (one
    check here; without a seed it took more for some draws, and whether the test passed then
    depended on the tests run before it)."""
    torch.manual_seed(0)
    study = optuna.create_study(direction="maximize")
    callback = SM2PruningCallback(study.ask(), "val_acc", tracker=EnergyTracker(StepMeter(WATTS)))
    module = TinyClassifier()
    train, valid = loaders(n, batch_size)
    fit = trainer(callback, 1)
    fit.fit(module, train, valid)
    per_epoch = len(train)
    plan = sweep_plan(per_epoch, 1, 0.25, 20)
    found = sweep_module(fit, module, fit.optimizers[0], SweepSettings(1e-3, 1.0, 20, 0.25))
    assert found.n_batches == plan.n_batches
    assert len(found.checks) == 1
    passes = found.samples_processed / batch_size
    assert passes <= plan.budget
    if plan.budget > FLOOR:
        assert passes <= 0.25 * per_epoch + 1


def test_a_loader_of_unknown_length_sweeps_n_lrs_batches() -> None:
    study = optuna.create_study(direction="maximize")
    callback = SM2PruningCallback(
        study.ask(), "val_acc", n_lrs=5, tracker=EnergyTracker(StepMeter(WATTS))
    )
    module = TinyClassifier()
    train, valid = loaders()
    fit = trainer(callback, 1)
    fit.fit(module, _Unsized(train), valid)
    assert fit.num_training_batches == math.inf
    found = sweep_module(fit, module, fit.optimizers[0], SweepSettings(1e-3, 1.0, 5, 0.25))
    assert found.n_batches == 5


class _Unsized(torch.utils.data.IterableDataset[Any]):
    """The batches of a loader, without a length."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
def test_explore_every_sets_the_blocks() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    tracker = EnergyTracker(StepMeter(WATTS))
    callback = SM2PruningCallback(trial, "train_loss", explore_every=2, n_lrs=5, tracker=tracker)
    trainer(callback, 3).fit(TinyClassifier(), loaders()[0])  # no validation loop
    stored = study.trials[0].user_attrs
    assert stored[attrs.EXPLORATIONS] == 2  # epochs 0 and 2
    assert stored[attrs.ENERGY_TRAIN_J] == pytest.approx(3 * WATTS)
    assert attrs.ENERGY_EVAL_J not in stored
    assert study.trials[0].intermediate_values.keys() == {0, 1, 2}
    callback.check_pruned()  # not pruned: nothing raised


def test_unmeasured_windows_store_no_total_and_training_goes_on(tmp_path: Path) -> None:
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'broken.db'}", direction="maximize"
    )
    broken = ScriptedMeter(*[EnergyReadError("meter unplugged")] * 100)
    callback = SM2PruningCallback(
        study.ask(), "val_acc", explore=False, tracker=EnergyTracker(broken)
    )
    trainer(callback, 2).fit(TinyClassifier(), *loaders())
    stored = study.trials[0].user_attrs
    assert stored[attrs.ENERGY_INVALID_WINDOWS] == 5  # sanity check, 2 x (train + eval)
    assert attrs.ENERGY_TOTAL_J not in stored
    assert attrs.ENERGY_PER_EPOCH_J not in stored
    assert study.trials[0].intermediate_values.keys() == {0, 1}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"monitor": ""}, "`monitor`"),
        ({"monitor": 3}, "`monitor`"),
        ({"explore": "yes"}, "`explore`"),
        ({"explore_every": 0}, "`explore_every`"),
        ({"explore_every": 1.5}, "`explore_every`"),
        ({"lr_min": 1.0, "lr_max": 0.1}, "`lr_min`"),
        ({"n_lrs": 2}, "`n_lrs`"),
        ({"explore_fraction": 0.0}, "`explore_fraction`"),
        ({"tracker": "nvml"}, "`tracker`"),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs: dict[str, Any], named: str) -> None:
    trial = optuna.create_study().ask()
    arguments: dict[str, Any] = {"monitor": "val_acc", **kwargs}
    with pytest.raises(ValueError, match=named):
        SM2PruningCallback(trial, **arguments)


def test_numpy_numbers_are_accepted() -> None:
    trial = optuna.create_study().ask()
    SM2PruningCallback(
        trial, "val_acc", explore_every=np.int64(2), lr_min=np.float32(1e-3), n_lrs=np.int32(5)
    )


@pytest.mark.parametrize("frozen", [True, False])
def test_a_missing_or_frozen_trial_is_refused(frozen: bool) -> None:
    study = optuna.create_study()
    study.optimize(lambda t: 0.0, n_trials=1)
    given = study.trials[0] if frozen else None
    with pytest.raises(ValueError, match=r"`trial`.*SM2PruningCallback\(trial, monitor=\.\.\.\)"):
        SM2PruningCallback(given, "val_acc")  # type: ignore[arg-type]


class _Manual(TinyClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        loss = super().training_step(batch, batch_idx)
        optimizer.zero_grad()  # type: ignore[union-attr]
        self.manual_backward(loss)
        optimizer.step()  # type: ignore[union-attr]
        return loss


@pytest.mark.parametrize(
    ("namespace", "module", "options", "message"),
    [
        ("lightning.pytorch", TinyClassifier, {"val_check_interval": 0.5}, "val_check_interval"),
        ("pytorch_lightning", None, {"check_val_every_n_epoch": 2}, "check_val_every_n_epoch"),
        ("lightning.pytorch", _Manual, {}, "manual optimization"),
    ],
)
def test_setups_it_cannot_measure_are_refused_before_writing(
    namespace: str, module: type[Any] | None, options: dict[str, Any], message: str
) -> None:
    lightning, classifier = NAMESPACES[namespace]
    study = optuna.create_study(direction="maximize")
    callback = SM2PruningCallback(study.ask(), "val_acc", tracker=EnergyTracker(StepMeter(1.0)))
    with pytest.raises(ValueError, match=message):
        trainer(callback, 2, lightning, **options).fit((module or classifier)(), *loaders())
    assert study.trials[0].user_attrs == {}


def test_a_missing_monitor_names_the_metrics_logged() -> None:
    callback = SM2PruningCallback(
        optuna.create_study().ask(), "val_loss", tracker=EnergyTracker(StepMeter(1.0))
    )
    with pytest.raises(ValueError, match=r"`monitor`='val_loss'.*'train_loss', 'val_acc'"):
        trainer(callback, 1).fit(TinyClassifier(), *loaders())


def test_ddp_needs_a_study_every_process_reaches() -> None:
    callback = SM2PruningCallback(optuna.create_study().ask(), "val_acc", explore=False)
    spawn = trainer(callback, 1, strategy="ddp_spawn", devices=2)
    with pytest.raises(ValueError, match="not one in memory"):
        callback.on_fit_start(spawn, TinyClassifier())


def test_importing_the_integration_imports_neither_torch_nor_lightning() -> None:
    code = (
        "import sys, optuna_sm2.integration as i; "
        "print('torch' in sys.modules, 'lightning' in sys.modules, "
        "'pytorch_lightning' in sys.modules, dir(i))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("False False False ")
    assert "'DistributedEnergyTracker', 'SM2PruningCallback'" in out.stdout


def test_the_callback_is_a_callback_of_both_namespaces() -> None:
    import pytorch_lightning

    callback = SM2PruningCallback(optuna.create_study().ask(), "val_acc")
    assert isinstance(callback, pl.Callback)
    assert isinstance(callback, pytorch_lightning.Callback)


_ONE_NAMESPACE = """
import sys
sys.modules["pytorch_lightning"] = None  # as if only `lightning` were installed
import lightning.pytorch as pl, optuna, torch
from torch.utils.data import DataLoader, TensorDataset
from optuna_sm2.integration import SM2PruningCallback

class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)

    def training_step(self, batch, batch_idx):
        loss = torch.nn.functional.cross_entropy(self.layer(batch[0]), batch[1])
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

x = torch.randn(64, 2)
study = optuna.create_study()
callback = SM2PruningCallback(study.ask(), "train_loss", n_lrs=4)
print(SM2PruningCallback.__mro__[1].__module__)
pl.Trainer(max_epochs=2, callbacks=[callback], logger=False, enable_progress_bar=False,
           enable_checkpointing=False, enable_model_summary=False).fit(
    Model(), DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8))
stored = study.trials[0]
print(sorted(stored.intermediate_values), "sm2.energy_total_j" in stored.user_attrs)
"""


@pytest.mark.filterwarnings("ignore:.*treespec:FutureWarning")
def test_lightning_alone_is_enough() -> None:
    """With ``lightning`` installed and not ``pytorch_lightning``, the callback is a
    ``lightning.pytorch`` Callback and a study's trial trains with it."""
    done = subprocess.run(
        [sys.executable, "-c", _ONE_NAMESPACE], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-2:] == ["lightning.pytorch.callbacks.callback", "[0, 1] True"]


def test_without_lightning_the_error_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['lightning'] = sys.modules['pytorch_lightning'] = None\n"
        "from optuna_sm2.integration import SM2PruningCallback"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ImportError: optuna_sm2.integration.SM2PruningCallback needs lightning: "
        "pip install 'optuna-sm2[lightning]'."
    )


def test_given_to_a_transformers_trainer_it_names_the_trainer_callback(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    callback = SM2PruningCallback(optuna.create_study().ask(), "eval_loss")
    arguments = transformers.TrainingArguments(output_dir=str(tmp_path), report_to=[])
    with pytest.raises(TypeError, match=r"optuna_sm2\.integration\.SM2TrainerCallback"):
        transformers.Trainer(model=torch.nn.Linear(2, 2), args=arguments, callbacks=[callback])
