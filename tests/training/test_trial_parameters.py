"""The trial's own hyperparameters next to SM²'s: a batch loss instead of a loss function, an
optimizer factory that suggests, and one clear error (never Optuna's, never a silent override)
for a batch size or LR searched by the user; nothing of SM² stored before such an error."""

from __future__ import annotations

import functools
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn

from optuna_sm2 import SM2Objective, attrs, optimize_synchronous
from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.training import _optimizer
from tests.support.tiny import tiny_data, tiny_objective


def _objective(**kwargs: Any) -> SM2Objective:
    return tiny_objective(**{"batch_sizes": (8, 16), **kwargs})


def _study(objective: SM2Objective) -> optuna.Study:
    return optuna.create_study(direction="maximize", pruner=objective.make_pruner())


def _nothing_of_sm2_stored(study: optuna.Study) -> bool:
    stored = [k for k in study.user_attrs if k.startswith("sm2")]
    for trial in study.trials:
        stored += [k for k in trial.user_attrs if k.startswith("sm2")]
        stored += [str(step) for step in trial.intermediate_values]
    return not stored


class ReturnsItsLoss(nn.Module):
    """A model that takes a dict and returns its own loss when given labels (HF style)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        logits = self.linear(features)
        if labels is None:
            return logits
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def test_batch_loss_trains_a_model_that_returns_its_own_loss() -> None:
    calls: list[int] = []

    def batch_loss(model: nn.Module, batch: Any) -> torch.Tensor:
        inputs, targets = batch
        calls.append(len(targets))
        return model(**inputs, labels=targets)["loss"]

    (x, y), (vx, vy) = tiny_data()

    def metric(model: nn.Module, data: Any) -> float:
        inputs, targets = data
        return float((model(**inputs).argmax(1) == targets).float().mean())

    objective = SM2Objective(
        lambda trial: ReturnsItsLoss(),
        ({"features": x}, y),
        ({"features": vx}, vy),
        metric=metric,
        batch_loss=batch_loss,
        batch_sizes=(8, 16),
        n_lrs=6,
        epochs_per_rung=1,
        final_epochs=1,
        meter=SimulatedMeter(power_w=50.0),
    )
    study = _study(objective)
    optimize_synchronous(study, objective)
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 1
    assert all(t.user_attrs[attrs.STABLE_LR] > 0 for t in study.trials)
    assert sum(calls) > 2 * len(y)  # the sweeps, their checks and the epochs all used it


def test_batch_loss_and_loss_fn_give_the_same_trial() -> None:
    def batch_loss(model: nn.Module, batch: Any) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    runs = []
    for kwargs in ({}, {"loss_fn": None, "batch_loss": batch_loss}):
        objective = _objective(batch_sizes=(8,), **kwargs)
        study = _study(objective)
        study.optimize(objective, n_trials=1)
        trial = study.trials[0]
        runs.append((trial.intermediate_values, trial.user_attrs[attrs.STABLE_LR]))
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss_fn": None}, r"exactly one of `loss_fn` .* and `batch_loss`"),
        ({"batch_loss": lambda m, b: 0}, r"exactly one of `loss_fn` .* and `batch_loss`"),
        ({"loss_fn": None, "batch_loss": "loss"}, r"`batch_loss` must be a callable"),
        ({"metric": None}, r"`metric` must be a callable"),
        ({"optimizer_factory": lambda: None}, r"`optimizer_factory` must be callable as"),
        ({"optimizer_factory": lambda a, b, c, d: None}, r"`optimizer_factory` must be"),
    ],
)
def test_bad_losses_and_factories_are_refused_naming_them(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        _objective(**kwargs)


@pytest.mark.parametrize(
    ("returned", "match"),
    [(0.5, r"got 0.5"), (torch.ones(3), r"got a tensor of shape \(3,\)")],
)
def test_a_batch_loss_that_returns_no_scalar_tensor_fails_naming_it(
    returned: object, match: str
) -> None:
    objective = _objective(loss_fn=None, batch_loss=lambda model, batch: returned)
    study = _study(objective)
    with pytest.raises(ValueError, match=f"`batch_loss` must return a scalar tensor.*{match}"):
        study.optimize(objective, n_trials=1)


def test_optimizer_factory_with_the_trial_searches_momentum_and_weight_decay() -> None:
    built: list[torch.optim.Optimizer] = []

    def factory(trial: optuna.trial.Trial, params: Any, lr: float) -> torch.optim.Optimizer:
        optimizer = torch.optim.SGD(
            params,
            lr=lr,
            momentum=trial.suggest_float("momentum", 0.0, 0.95),
            weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        )
        built.append(optimizer)
        return optimizer

    objective = _objective(optimizer_factory=factory)
    study = _study(objective)
    study.optimize(objective, n_trials=3)
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    momenta = {t.params["momentum"] for t in study.trials}
    assert len(momenta) == 3  # sampled per trial
    # The training optimizer and each sweep's copy use the trial's values.
    used = {group["momentum"] for o in built for group in o.param_groups}
    assert used == momenta


@pytest.mark.parametrize(
    "factory",
    [
        torch.optim.SGD,
        functools.partial(torch.optim.SGD, momentum=0.5),
        lambda params, lr: torch.optim.Adam(params, lr=lr),
    ],
)
def test_plain_factories_still_work(factory: Any) -> None:
    assert not _optimizer.TrialOptimizer(factory).takes_trial
    objective = _objective(optimizer_factory=factory, batch_sizes=(8,))
    study = _study(objective)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.COMPLETE


def _fails_first_trial(objective: SM2Objective, match: str) -> optuna.Study:
    study = _study(objective)
    with pytest.raises(ValueError, match=match) as caught:
        study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert _nothing_of_sm2_stored(study)
    assert "dynamic value space" not in str(caught.value)
    return study


def test_batch_size_suggested_with_other_choices_is_one_clear_error() -> None:
    def build(trial: optuna.trial.Trial) -> nn.Module:
        trial.suggest_categorical("batch_size", [32, 64])
        return nn.Linear(4, 2)

    _fails_first_trial(
        _objective(build_model=build),
        r"`build_model`.*SM2Objective suggests `batch_size` itself, from `batch_sizes` "
        r"\[8, 16\].*pass them as `batch_sizes`",
    )


def test_batch_size_suggested_as_an_int_is_one_clear_error() -> None:
    def build(trial: optuna.trial.Trial) -> nn.Module:
        trial.suggest_int("batch_size", 8, 64)
        return nn.Linear(4, 2)

    _fails_first_trial(_objective(build_model=build), r"suggests `batch_size` itself")


def test_batch_size_suggested_by_the_optimizer_factory_is_one_clear_error() -> None:
    def factory(trial: optuna.trial.Trial, params: Any, lr: float) -> torch.optim.Optimizer:
        trial.suggest_categorical("batch_size", [8, 16, 32])
        return torch.optim.SGD(params, lr=lr)

    _fails_first_trial(
        _objective(optimizer_factory=factory),
        r"^`optimizer_factory` suggested a parameter again.*suggests `batch_size` itself",
    )


def test_batch_size_suggested_with_the_same_choices_is_honoured() -> None:
    seen: list[int] = []

    def build(trial: optuna.trial.Trial) -> nn.Module:
        seen.append(trial.suggest_categorical("batch_size", [8, 16]))
        assert seen[-1] == trial.params["batch_size"]
        return nn.Linear(4, 2)

    objective = _objective(build_model=build)
    study = _study(objective)
    study.optimize(objective, n_trials=2)
    assert seen == [t.params["batch_size"] for t in study.trials]


@pytest.mark.parametrize("name", ["lr", "learning_rate"])
def test_an_lr_suggested_by_the_builder_is_one_clear_error(name: str) -> None:
    def build(trial: optuna.trial.Trial) -> nn.Module:
        trial.suggest_float(name, 1e-4, 1e-1, log=True)
        return nn.Linear(4, 2)

    _fails_first_trial(
        _objective(build_model=build),
        rf"suggested '{name}'.*SM2Objective chooses the learning rate itself.*`lr_min`",
    )


def test_a_factory_that_ignores_the_lr_is_one_clear_error() -> None:
    def factory(trial: optuna.trial.Trial, params: Any, lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=trial.suggest_float("my_lr", 1e-3, 1e-1))

    _fails_first_trial(
        _objective(optimizer_factory=factory),
        r"`optimizer_factory` must build the optimizer with the lr it is given",
    )


def test_a_factory_that_returns_no_optimizer_is_one_clear_error() -> None:
    _fails_first_trial(
        _objective(optimizer_factory=lambda params, lr: None),
        r"`optimizer_factory` must return a torch optimizer",
    )


@pytest.mark.parametrize("returned", [torch.tensor(0.5), None])
def test_a_metric_returning_a_tensor_or_none_fails_before_sm2_writes(returned: object) -> None:
    _fails_first_trial(
        _objective(metric=lambda model, data: returned), r"`metric` must return a number"
    )
