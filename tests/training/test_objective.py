from __future__ import annotations

import math
import warnings

import optuna
import pytest
import torch
from optuna.trial import TrialState

from optuna_sm2 import SM2Objective, attrs, optimize_synchronous
from optuna_sm2.energy import EnergyMeter, SimulatedMeter
from optuna_sm2.lr import sweep_plan
from optuna_sm2.lr._plan import FLOOR
from optuna_sm2.training._checkpoint import study_directory
from tests.support.meters import StepMeter
from tests.support.tiny import accuracy, die_past_first_rung, tiny_data, tiny_objective


def _sqlite_study(tmp_path, objective, **kwargs):
    return optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        study_name="tiny",
        direction="maximize",
        pruner=objective.make_pruner(**kwargs),
    )


def test_study_optimize_stores_every_attribute(tmp_path):
    objective = tiny_objective()
    study = _sqlite_study(tmp_path, objective)
    study.optimize(objective, n_trials=4)
    schedule = study.user_attrs[attrs.SCHEDULE]
    assert schedule["rung_steps"] == objective.rung_steps == [1, 3, 5]
    assert schedule["metric_name"] == "accuracy"
    for t in study.trials:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        u = t.user_attrs
        parts = u[attrs.ENERGY_EXPLORE_J] + u[attrs.ENERGY_TRAIN_J] + u[attrs.ENERGY_EVAL_J]
        assert u[attrs.ENERGY_TOTAL_J] == pytest.approx(parts)
        assert u[attrs.ENERGY_TOTAL_J] > 0
        assert u[attrs.ENERGY_SOURCE] == "simulated"
        assert 1e-3 <= u[attrs.STABLE_LR] <= 1.0
        assert u[attrs.ENERGY_PER_EPOCH_J] > 0
        assert u[attrs.EXPLORATIONS] >= 1
        lo, hi = u[attrs.LR_WINDOW]
        assert lo <= u[attrs.STABLE_LR] <= hi
        steps = sorted(t.intermediate_values)
        assert steps == list(range(len(steps)))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    for t in complete:
        assert t.user_attrs[attrs.EPOCHS_TRAINED] == objective.schedule.train_epochs_total
        assert t.value == t.intermediate_values[max(t.intermediate_values)]


class _SampleMeter(EnergyMeter):
    """One joule per training sample seen by the loss: energy per epoch is the data size."""

    source = "simulated"
    is_estimate = False

    def __init__(self) -> None:
        self.joules = 0.0

    def read(self) -> float:
        return self.joules

    def close(self) -> None:
        pass


def test_energy_per_epoch_is_one_full_pass(tmp_path):
    meter = _SampleMeter()
    train, valid = tiny_data()

    def loss(outputs, targets):
        meter.joules += len(targets)
        return torch.nn.functional.cross_entropy(outputs, targets)

    objective = SM2Objective(
        lambda trial: torch.nn.Linear(4, 2),
        train,
        valid,
        loss,
        accuracy,
        batch_sizes=(8,),
        n_lrs=6,
        epochs_per_rung=1,
        final_epochs=1,
        meter=meter,
    )
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    trial = study.ask()
    steps = objective.run(trial)
    per_epoch = []
    for phase in steps:
        per_epoch.append((phase.kind, trial.user_attrs[attrs.ENERGY_PER_EPOCH_J]))
    n = len(train[1])
    assert [e for kind, e in per_epoch if kind == "train"] == [n, n]
    # The sweep's joules per sample of every loss it computed (its batches, the stability
    # check's steps and extra forward passes), times the training set: exactly one pass here.
    assert [e for kind, e in per_epoch if kind == "explore"] == [n, n]


def _negative_loss(model, valid):
    inputs, targets = valid
    return -float(torch.nn.functional.cross_entropy(model(inputs), targets))


def test_synchronous_eight_become_one(tmp_path):
    # Every window the same energy and a metric that does not tie (accuracy on the tiny
    # validation set does): the decisions depend on neither the machine's load nor ties.
    objective = tiny_objective(
        metric=_negative_loss, metric_name="negative loss", meter=StepMeter(50.0)
    )
    study = _sqlite_study(tmp_path, objective)
    optimize_synchronous(study, objective)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 1
    assert states.count(TrialState.PRUNED) == 7
    batch_sizes = sorted(t.params["batch_size"] for t in study.trials)
    assert batch_sizes == sorted(objective.batch_sizes)
    reached = [sum(f"sm2:rung_{r}" in t.system_attrs for r in range(3)) for t in study.trials]
    assert sorted(reached) == [1, 1, 1, 1, 2, 2, 3, 3]


def test_synchronous_needs_the_objectives_pruner(tmp_path):
    objective = tiny_objective()
    study = optuna.create_study(pruner=optuna.pruners.SuccessiveHalvingPruner())
    with pytest.raises(ValueError, match=r"pruner=objective.make_pruner"):
        optimize_synchronous(study, objective)


def test_parallel_trials_in_one_process_warn():
    objective = tiny_objective(batch_sizes=(8, 16))
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    with pytest.warns(RuntimeWarning, match="can no longer be attributed"):
        study.optimize(objective, n_trials=4, n_jobs=2)


def test_diverging_training_is_pruned_not_crashed():
    def nan_after_first(outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets) * math.inf

    train, valid = tiny_data()
    objective = SM2Objective(
        lambda trial: torch.nn.Linear(4, 2),
        train,
        valid,
        nan_after_first,
        accuracy,
        batch_sizes=(8,),
        n_lrs=6,
        epochs_per_rung=1,
        final_epochs=0,
        meter=tiny_objective().tracker.meter,
    )
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.PRUNED


def test_retried_trial_resumes_from_checkpoint(tmp_path):
    epochs_run = []

    def count_epochs(trial, result):
        if trial.number == 1 and result.kind == "train":
            epochs_run.append(result.step)

    objective = tiny_objective(
        batch_sizes=(8,), checkpoint_dir=tmp_path / "ckpt", callbacks=[count_epochs]
    )
    study = _sqlite_study(tmp_path, objective)
    first = die_past_first_rung(study, objective)
    folder = study_directory(tmp_path / "ckpt", study)  # the name, id and storage of the study
    assert folder.parent == tmp_path / "ckpt" and folder.name.startswith("tiny-1-")
    assert (folder / "0.pt").exists()
    epochs_at_checkpoint = study.trials[0].user_attrs[attrs.EPOCHS_TRAINED]
    assert first.number == 0

    study.optimize(objective, n_trials=1)
    retry = study.trials[1]
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs[attrs.RESUMED_FROM] == 0
    total = objective.schedule.train_epochs_total
    assert retry.user_attrs[attrs.EPOCHS_TRAINED] == total
    assert len(epochs_run) == total - epochs_at_checkpoint  # not the whole run again
    # Each trial books only what it ran itself: the study total counts the lost work once.
    assert retry.user_attrs[attrs.ENERGY_TRAIN_J] > 0
    assert study.trials[0].user_attrs[attrs.ENERGY_TRAIN_J] > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"explore_fraction": 0.0}, r"`explore_fraction` must be in \(0, 1\]"),
        ({"lr_min": 1.0, "lr_max": 0.1}, "need 0 < `lr_min` < `lr_max`"),
        ({"batch_sizes": (8, 1000)}, r"batch size 1000 is not an integer in \[1, 72\]"),
        ({"epochs_per_rung": 0}, "`epochs_per_rung` must be an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_objective(**kwargs)


def test_no_warning_for_one_trial_at_a_time():
    objective = tiny_objective(batch_sizes=(8, 16))
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        study.optimize(objective, n_trials=2)


@pytest.mark.parametrize("batch_size", [8, 32, 64])
def test_an_exploration_spends_at_most_its_stated_cost(batch_size):
    """Every exploration processes at most ``explore_fraction`` of the training set plus one
    batch, or, where that is less than the plan's floor (21 batch passes), the floor's
    batches: at 2000 samples batch 8 is within the fraction (63 passes), 32 and 64 at the
    floor. The workload is tame (the grid's one stability check suffices), which is when the
    plan's budget holds exactly; the samples are those of the sweep's copies of the model."""
    n, fraction = 2000, 0.25
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + 200, 16, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    made, explored = [], [0]

    def build(trial):
        made.append(
            torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        )
        return made[-1]

    def batch_loss(model, batch):
        inputs, targets = batch
        if all(model is not m for m in made):  # a sweep's copy, not the trained model
            explored[0] += len(targets)
        return torch.nn.functional.cross_entropy(model(inputs), targets)

    objective = SM2Objective(
        build,
        (x[:n], y[:n]),
        (x[n:], y[n:]),
        None,
        accuracy,
        batch_loss=batch_loss,
        batch_sizes=(batch_size,),
        explore_fraction=fraction,
        epochs_per_rung=1,
        final_epochs=0,
        meter=SimulatedMeter(power_w=50.0),
    )
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    plan = sweep_plan(n, batch_size, fraction, 20)
    per_exploration, before = [], 0
    for phase in objective.run(study.ask()):
        if phase.kind == "explore":
            per_exploration.append(explored[0] - before)
        before = explored[0]
    assert per_exploration
    for samples in per_exploration:
        assert samples >= (plan.n_batches + 1) * batch_size  # the sweep and its closing pass
        if plan.budget > FLOOR:
            assert samples <= fraction * n + batch_size
        else:
            assert samples <= FLOOR * batch_size
    assert (plan.budget > FLOOR) == (batch_size == 8)
