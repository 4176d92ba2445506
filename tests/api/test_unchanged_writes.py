"""No ``set_user_attr`` call of a whole study writes a value the trial already stores: an
``SM2Objective`` study with a retried trial, an own loop (the README's ``TrialEnergy`` +
``report`` recipe) and a Lightning study, each on a real SQLite file whose writes are counted
(the Hugging Face callback's study is counted in ``tests/integration/test_transformers.py``)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import optuna
import pytest

from optuna_sm2 import EnergyTracker, SuccessiveHalvingEnergyPruner, TrialEnergy, attrs, report
from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.integration import SM2PruningCallback
from tests.support.lightning import TinyClassifier, loaders, trainer
from tests.support.meters import StepMeter
from tests.support.tiny import die_past_first_rung, tiny_objective
from tests.support.writes import CountedWrites

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec:FutureWarning")


def _study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pruner: optuna.pruners.BasePruner):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(
        storage=storage,
        direction="maximize",
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    return study, CountedWrites(storage, monkeypatch)


def _epochs(study: optuna.Study) -> int:
    return sum(t.user_attrs.get(attrs.EPOCHS_TRAINED, 0) for t in study.trials)


def test_an_sm2_objective_study_with_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objective = tiny_objective(epochs_per_rung=2, final_epochs=2, checkpoint_dir=tmp_path / "ckpt")
    study, writes = _study(tmp_path, monkeypatch, objective.make_pruner())
    die_past_first_rung(study, objective)
    study.optimize(objective, n_trials=4)

    retry = study.trials[1]
    assert retry.user_attrs[attrs.RESUMED_FROM] == 0
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert writes.unchanged == []
    assert writes.calls[attrs.RESUMED_FROM] == 1
    # The stable LR changes once per exploration at most (it was rewritten every step).
    explorations = sum(t.user_attrs[attrs.EXPLORATIONS] for t in study.trials)
    assert writes.calls[attrs.STABLE_LR] <= explorations
    assert writes.total < 12 * _epochs(study)


def test_an_own_loop_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = EnergyTracker(SimulatedMeter(power_w=50.0))

    def objective(trial: optuna.trial.Trial) -> float:
        batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
        energy = TrialEnergy(trial, tracker)
        accuracy = 0.0
        for epoch in range(8):
            with energy.window("train"):
                sum(range(1000))
            with energy.window("eval"):
                accuracy = 1.0 - 1.0 / (epoch + 2) - batch_size / 4096
            report(
                trial,
                accuracy,
                epoch,
                energy_per_epoch_j=energy.energy_per_epoch_j,
                energy_per_epoch_spread=energy.energy_per_epoch_spread,
                stable_lr=batch_size / 1000,
            )
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    study, writes = _study(tmp_path, monkeypatch, SuccessiveHalvingEnergyPruner())
    study.optimize(objective, n_trials=8)

    assert {t.state for t in study.trials} == {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    }
    assert writes.unchanged == []
    assert writes.calls[attrs.STABLE_LR] == len(study.trials)  # once per trial
    for trial in study.trials:
        assert trial.user_attrs[attrs.ENERGY_TOTAL_J] == pytest.approx(
            trial.user_attrs[attrs.ENERGY_TRAIN_J] + trial.user_attrs[attrs.ENERGY_EVAL_J]
        )


def test_a_lightning_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    tracker = EnergyTracker(StepMeter(10.0))

    def objective(trial: optuna.trial.Trial) -> float:
        explore = trial.suggest_categorical("explore", [True, False])
        pl.seed_everything(trial.number, verbose=False)
        callback = SM2PruningCallback(
            trial, monitor="val_acc", explore=explore, n_lrs=5, tracker=tracker
        )
        fit = trainer(callback, 4)
        fit.fit(TinyClassifier(lr=0.05), *loaders())
        callback.check_pruned()
        return float(fit.callback_metrics["val_acc"].item())

    study, writes = _study(
        tmp_path, monkeypatch, SuccessiveHalvingEnergyPruner(rung_steps=[1, 3], alpha=1.0)
    )
    study.enqueue_trial({"explore": True})
    study.enqueue_trial({"explore": False})
    study.enqueue_trial({"explore": True})
    study.optimize(objective, n_trials=3)

    explored = [t for t in study.trials if t.params["explore"]]
    assert all(t.user_attrs[attrs.EXPLORATIONS] >= 1 for t in explored)
    assert writes.unchanged == []
    # Once per exploration at most (a sweep may choose the LR the trial holds already).
    explorations = sum(t.user_attrs[attrs.EXPLORATIONS] for t in explored)
    assert len(explored) <= writes.calls[attrs.STABLE_LR] <= explorations
