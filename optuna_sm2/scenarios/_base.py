"""``Scenario`` and ``Budget``: one benchmark workload and the settings it runs at."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from optuna_sm2.training import Schedule, SM2Objective

if TYPE_CHECKING:
    import optuna

DataPair = tuple[torch.Tensor, torch.Tensor]
BudgetName = Literal["tiny", "small", "paper"]
Direction = Literal["maximize", "minimize"]

BUDGETS: tuple[BudgetName, ...] = ("tiny", "small", "paper")
"""``tiny``: the smoke tests (seconds); ``small``: 2 CPU cores; ``paper``: the paper's settings."""

INSTALL_HINT = "pip install 'optuna-sm2[scenarios]'"


class ScenarioDataMissing(ImportError):
    """The package that ships a scenario's data is not installed."""


@dataclass(frozen=True)
class Budget:
    """How much a scenario trains: the SM² search grid and the epochs of one configuration.

    ``batch_sizes``, ``lr_min``, ``lr_max``, ``n_lrs``, ``explore_fraction``,
    ``epochs_per_rung`` and ``final_epochs`` are passed to :class:`optuna_sm2.SM2Objective`
    unchanged. ``patience`` is the early stopping of the vanilla run: it stops after that many
    epochs without a better validation metric.
    """

    name: BudgetName
    batch_sizes: tuple[int, ...]
    n_lrs: int
    epochs_per_rung: int
    final_epochs: int
    patience: int
    lr_min: float = 1e-3
    lr_max: float = 1.0
    explore_fraction: float = 0.25

    @property
    def default_batch_size(self) -> int:
        """The vanilla run's batch size: the middle one (the lower middle for an even count)."""
        sizes = sorted(self.batch_sizes)
        return sizes[(len(sizes) - 1) // 2]

    @property
    def schedule(self) -> Schedule:
        """The schedule of the scenario's objective at this budget."""
        return Schedule.halving(len(self.batch_sizes), self.epochs_per_rung, self.final_epochs)


@dataclass(frozen=True)
class Scenario:
    """One workload of the benchmark: data, model, loss and metric, and its budget.

    Attributes:
        name: ``vision``, ``household`` or ``text``.
        description: Model and data in a few words, for tables.
        train_data: ``(inputs, targets)`` tensors for training.
        valid_data: ``(inputs, targets)`` tensors for the metric.
        build_model: ``build_model(trial)`` returns a fresh model; the trial may be ``None``
            (the vanilla run); the scenarios search nothing but batch size and LR, so the
            trial is not used.
        loss_fn: The training loss, ``loss_fn(outputs, targets)``.
        metric: ``metric(model, data) -> float`` on the validation data (eval mode, no grad).
        metric_name: ``accuracy``, ``r2`` or ``perplexity``.
        direction: Whether a larger metric is better (``maximize``) or smaller.
        conventional_lr: The vanilla run's learning rate (plain SGD).
        budget: Grid and epochs (see :class:`Budget`).
        data_source: Where the data comes from, for the results.
    """

    name: str
    description: str
    train_data: DataPair
    valid_data: DataPair
    build_model: Callable[[optuna.trial.Trial | None], nn.Module]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metric: Callable[[nn.Module, DataPair], float]
    metric_name: str
    direction: Direction
    conventional_lr: float
    budget: Budget
    data_source: str

    def objective(self, **options: Any) -> SM2Objective:
        """The scenario's :class:`optuna_sm2.SM2Objective` at its budget.

        ``options`` (``device``, ``meter``, ``seed``, ``checkpoint_dir``, ``callbacks``, or a
        budget value such as ``epochs_per_rung``) are passed on and take precedence over the
        budget's.
        """
        budget = self.budget
        settings: dict[str, Any] = {
            "batch_sizes": budget.batch_sizes,
            "lr_min": budget.lr_min,
            "lr_max": budget.lr_max,
            "n_lrs": budget.n_lrs,
            "explore_fraction": budget.explore_fraction,
            "epochs_per_rung": budget.epochs_per_rung,
            "final_epochs": budget.final_epochs,
            "metric_name": self.metric_name,
        }
        return SM2Objective(
            self.build_model,
            self.train_data,
            self.valid_data,
            self.loss_fn,
            self.metric,
            **{**settings, **options},
        )

    def better(self, a: float, b: float) -> bool:
        """Whether metric value ``a`` is strictly better than ``b`` in this direction."""
        return a > b if self.direction == "maximize" else a < b


def package_dir(module: str, scenario: str) -> Path:
    """The directory of the installed package ``module``, found without importing it.

    Raises:
        ScenarioDataMissing: the package is not installed; the message names the extra.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ScenarioDataMissing(
            f"the {scenario!r} scenario needs the package {module!r}, which ships its data: "
            f"{INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def check_budget(budget: str) -> BudgetName:
    """``budget`` if it is one of :data:`BUDGETS`, else ``ValueError`` listing them."""
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    return budget
