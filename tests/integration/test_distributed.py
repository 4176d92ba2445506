"""``DistributedEnergyTracker`` over two CPU processes (``gloo``): windows summed over ranks."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import optuna
import pytest
import torch.multiprocessing as mp

from optuna_sm2 import EnergyTracker, SuccessiveHalvingEnergyPruner, attrs
from optuna_sm2.cli import main
from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.integration import DistributedEnergyTracker, SM2PruningCallback
from tests.support.lightning import TinyClassifier, loaders, trainer
from tests.support.meters import StepMeter
from tests.support.ranks import POWERS, measure_on_rank


def test_windows_hold_the_sum_over_two_ranks(tmp_path: Path) -> None:
    optuna.create_study(study_name="ddp", storage=f"sqlite:///{tmp_path}/ddp.db")
    mp.spawn(measure_on_rank, args=(2, str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    total = sum(POWERS)
    for rank, out in enumerate(ranks):
        assert out["summed"] == [pytest.approx(total), True, "simulated", "simulated"]
        assert out["warnings"] == []
        valid, reason = out["partial"]
        assert not valid
        assert "rank 1 of 2" in reason
        assert ("counter gone" in reason) == (rank == 1)
        assert out["estimated"] == [True, "simulated+nvml-power-estimate", True]
        assert out["book"] == [pytest.approx(4 * total), pytest.approx(total)]
    assert len(ranks[0]["host_warnings"]) == 1
    assert "ranks 0, 1 on host" in ranks[0]["host_warnings"][0]
    assert "counted 2 times" in ranks[0]["host_warnings"][0]
    assert ranks[1]["host_warnings"] == []

    (trial,) = optuna.load_study(study_name="ddp", storage=f"sqlite:///{tmp_path}/ddp.db").trials
    assert trial.user_attrs[attrs.ENERGY_TOTAL_J] == pytest.approx(4 * total)
    assert trial.user_attrs[attrs.ENERGY_TRAIN_J] == pytest.approx(3 * total)
    assert trial.user_attrs[attrs.ENERGY_INVALID_WINDOWS] == 0


def test_without_a_process_group_windows_are_the_ranks_own() -> None:
    tracker = DistributedEnergyTracker(EnergyTracker(StepMeter(7.0)))
    with tracker.window() as window:
        pass
    assert window.joules == pytest.approx(7.0)
    assert tracker.source == "simulated"
    assert tracker.tracker.meter is tracker.meter


def test_bad_trackers_are_refused() -> None:
    with pytest.raises(ValueError, match="`tracker` must be an EnergyTracker"):
        DistributedEnergyTracker(SimulatedMeter())  # type: ignore[arg-type]
    summed = DistributedEnergyTracker(EnergyTracker(SimulatedMeter()))
    with pytest.raises(ValueError, match="already sums over ranks"):
        DistributedEnergyTracker(summed)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*treespec:FutureWarning", "ignore:.*sync_dist=True")
def test_lightning_ddp_spawn_sums_ranks_and_prunes_from_a_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    storage = f"sqlite:///{tmp_path / 'ddp.db'}"
    study = optuna.create_study(
        study_name="ddp",
        storage=storage,
        direction="maximize",
        pruner=SuccessiveHalvingEnergyPruner(rung_steps=[1, 3], alpha=1.0),
    )
    # A finished competitor that no model can beat at rung 0: the DDP trial is pruned there.
    study.add_trial(
        optuna.trial.create_trial(
            value=2.0,
            intermediate_values={1: 2.0},
            system_attrs={"sm2:rung_0": {"trial": 0, "value": 2.0}},
        )
    )
    trial = study.ask()
    meter = StepMeter(POWERS[0], per_rank=True)  # rank r draws POWERS[0] * (r + 1)
    callback = SM2PruningCallback(trial, "val_acc", n_lrs=5, tracker=EnergyTracker(meter))
    fit = trainer(callback, 4, strategy="ddp_spawn", devices=2)
    fit.fit(TinyClassifier(), *loaders())
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        callback.check_pruned()  # the decision was taken in rank 0's worker
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)

    stored = study.trials[1]
    per_window = POWERS[0] * (1 + 2)
    assert sorted(stored.intermediate_values) == [0, 1]
    user = stored.user_attrs
    assert user[attrs.ENERGY_TRAIN_J] == pytest.approx(2 * per_window)
    assert user[attrs.ENERGY_EVAL_J] == pytest.approx(3 * per_window)  # sanity check + 2
    assert user[attrs.ENERGY_EXPLORE_J] == pytest.approx(per_window)
    assert user[attrs.ENERGY_PER_EPOCH_J] == pytest.approx(per_window)
    assert user[attrs.ENERGY_INVALID_WINDOWS] == 0
    assert user[attrs.EXPLORATIONS] == 1
    capsys.readouterr()
    assert main(["report", "--storage", storage, "--study", "ddp", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"][1]["energy_total_j"] == pytest.approx(6 * per_window)


def test_the_pruner_pickles_and_decides_as_before_for_spawned_workers() -> None:
    def objective(trial: optuna.trial.Trial) -> float:
        value = [0.9, 0.1][trial.number % 2]
        for step in range(3):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    pruner = SuccessiveHalvingEnergyPruner(rung_steps=[1], alpha=1.0)
    used = optuna.create_study(direction="maximize", pruner=pruner)
    used.optimize(objective, n_trials=1)  # the pruner now holds a cache of this study
    copy = pickle.loads(pickle.dumps(pruner))
    assert copy.rung_steps == (1,)
    study = optuna.create_study(direction="maximize", pruner=copy)
    study.optimize(objective, n_trials=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
