"""The optimizer factory: its two forms, bound to a trial, and the LR it must honour.

``factory(params, lr)`` builds the same optimizer for every trial; ``factory(trial, params, lr)``
may suggest the optimizer's own hyperparameters (momentum, weight decay, betas) the way the
model builder does. SM² chooses the LR itself, by its exploratory sweep, and sets it on every
parameter group, so a factory must build the optimizer at the ``lr`` it is given, and a trial
must not search an LR of its own that would be recorded but never used.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import optuna
import torch

from optuna_sm2 import _validation as _check

PlainFactory = Callable[[Any, float], torch.optim.Optimizer]
"""``factory(params, lr) -> Optimizer``."""

TrialFactory = Callable[[optuna.trial.Trial, Any, float], torch.optim.Optimizer]
"""``factory(trial, params, lr) -> Optimizer``."""

OptimizerFactory = PlainFactory | TrialFactory

LR_PARAMS = ("lr", "learning_rate")
"""Parameter names a trial may not suggest: SM²'s sweep chooses the learning rate."""

_ACCEPTED = "factory(params, lr) or factory(trial, params, lr) returning a torch optimizer"


def sgd(params: Any, lr: float) -> torch.optim.Optimizer:
    """Plain SGD, the default optimizer of both the sweep and the thorough epochs."""
    return torch.optim.SGD(params, lr=lr)


def _required_positional(factory: Callable[..., Any]) -> int | None:
    """How many positional parameters without a default ``factory`` has; ``None`` when its
    signature cannot be read."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(
        1
        for p in signature.parameters.values()
        if p.kind in positional and p.default is inspect.Parameter.empty
    )


def _accepts(factory: Callable[..., Any], n: int) -> bool:
    try:
        inspect.signature(factory).bind(*range(n))
    except TypeError:
        return False
    except ValueError:  # no signature to read: assume it does
        return True
    return True


class TrialOptimizer:
    """An optimizer factory in one of its two forms, told apart by its signature once.

    A factory with exactly three positional parameters without defaults is the trial form
    ``factory(trial, params, lr)``; any other that can be called as ``factory(params, lr)``
    (a function, ``torch.optim.SGD``, a ``functools.partial``) is the plain form.

    Example:
        >>> import optuna, torch
        >>> def with_momentum(trial, params, lr):
        ...     momentum = trial.suggest_float("momentum", 0.0, 0.9)
        ...     return torch.optim.SGD(params, lr=lr, momentum=momentum)
        >>> TrialOptimizer(with_momentum).takes_trial, TrialOptimizer(torch.optim.SGD).takes_trial
        (True, False)
        >>> trial = optuna.create_study().ask()
        >>> build = TrialOptimizer(with_momentum).bind(trial)
        >>> build(torch.nn.Linear(2, 1).parameters(), 0.1).param_groups[0]["lr"]
        0.1
        >>> sorted(trial.params)
        ['momentum']
    """

    def __init__(self, factory: object) -> None:
        _check.check_callable("optimizer_factory", factory, _ACCEPTED)
        assert callable(factory)
        self._factory: Callable[..., torch.optim.Optimizer] = factory
        self.takes_trial = _required_positional(factory) == 3
        """Whether the factory is called ``factory(trial, params, lr)``."""
        if not self.takes_trial and not _accepts(factory, 2):
            raise ValueError(
                f"`optimizer_factory` must be callable as {_ACCEPTED}; "
                f"{factory!r} takes neither form."
            )

    def bind(self, trial: optuna.trial.Trial) -> PlainFactory:
        """``factory(params, lr)`` for ``trial``: what the sweep and the training call. The
        trial form suggests the same values each time (Optuna returns a parameter already
        suggested)."""
        factory = self._factory
        if not self.takes_trial:
            return factory

        def for_trial(params: Any, lr: float) -> torch.optim.Optimizer:
            return factory(trial, params, lr)

        return for_trial


def check_lr_honoured(optimizer: object, lr: float) -> torch.optim.Optimizer:
    """``optimizer`` if it is a torch optimizer whose every parameter group has ``lr``.

    Raises:
        ValueError: naming ``optimizer_factory``: it returned something else, or set another
            LR (a fixed one, or a scaled one per group), which SM² would silently override.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"`optimizer_factory` must return a torch optimizer, got {optimizer!r}.")
    built = [float(group["lr"]) for group in optimizer.param_groups]
    if any(value != lr for value in built):
        raise ValueError(
            f"`optimizer_factory` must build the optimizer with the lr it is given: given "
            f"lr={lr:g}, its parameter groups have lr={built}. SM² sets the learning rate "
            "its exploratory sweep finds on every parameter group; use the `lr` argument "
            "(the LR is searched between `lr_min` and `lr_max`)."
        )
    return optimizer


def check_no_lr_param(trial: optuna.trial.Trial) -> None:
    """Raise if ``trial`` suggested a learning rate of its own (in ``build_model`` or the
    optimizer factory): it would be stored as a parameter but never trained with."""
    found = [name for name in LR_PARAMS if name in trial.params]
    if found:
        raise ValueError(
            f"the trial suggested {found[0]!r} (in `build_model` or `optimizer_factory`), but "
            "SM2Objective chooses the learning rate itself by its exploratory sweep: a "
            "searched LR would be recorded and never used. Remove the suggestion and set the "
            "range the sweep explores with `lr_min` and `lr_max`; the LR each trial trained "
            "at is stored as the user attribute sm2.stable_lr."
        )
