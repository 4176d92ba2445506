"""Checks of ``SM2Objective``'s arguments that the shared ``_validation`` module lacks: the
checkpoint directory, the callbacks and the options of the data loaders (the device is checked
by :mod:`optuna_sm2.lr._device`, shared with ``explore_lr``). Each raises one ``ValueError``
naming the argument and what is accepted."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from optuna_sm2 import _validation as _check
from optuna_sm2.training._loop import PhaseCallback


def check_checkpoint_dir(checkpoint_dir: object) -> Path | None:
    if checkpoint_dir is None:
        return None
    if not isinstance(checkpoint_dir, (str, os.PathLike)) or str(checkpoint_dir) == "":
        raise ValueError(
            f"`checkpoint_dir` must be a directory path (str or PathLike) or None, "
            f"got {checkpoint_dir!r}."
        )
    path = Path(checkpoint_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"`checkpoint_dir` {str(path)!r} exists and is not a directory.")
    return path


def check_callbacks(callbacks: object) -> tuple[PhaseCallback, ...]:
    accepted = "a sequence of callables callback(trial, result)"
    if callable(callbacks) or not isinstance(callbacks, Iterable) or isinstance(callbacks, str):
        raise ValueError(f"`callbacks` must be {accepted}, got {callbacks!r}.")
    found = tuple(callbacks)
    for callback in found:
        if not callable(callback):
            raise ValueError(f"`callbacks` must be {accepted}; {callback!r} is not callable.")
    return found


@dataclass(frozen=True)
class LoaderOptions:
    """How the Datasets of an objective are placed and loaded (checked)."""

    preload_budget_bytes: int | None
    num_workers: int
    pin_memory: bool | None
    valid_batch_size: int | None


def check_loader_options(
    preload_budget_bytes: object,
    num_workers: object,
    pin_memory: object,
    valid_batch_size: object,
) -> LoaderOptions:
    """The options as plain Python values; one ``ValueError`` naming a bad one."""
    budget = (
        None
        if preload_budget_bytes is None
        else _check.check_int("preload_budget_bytes", preload_budget_bytes, minimum=0)
    )
    workers = _check.check_int("num_workers", num_workers, minimum=0)
    if pin_memory is not None and not isinstance(pin_memory, bool):
        raise ValueError(f"`pin_memory` must be True, False or None, got {pin_memory!r}.")
    size = (
        None
        if valid_batch_size is None
        else _check.check_int("valid_batch_size", valid_batch_size, minimum=1)
    )
    return LoaderOptions(budget, workers, pin_memory, size)
