"""Checkpoints of a trial: state dicts through ``torch.save``, read with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn


def save_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, progress: dict[str, Any]
) -> None:
    """Write model and optimizer state and the trial's progress to ``path``, atomically.

    The file is written next to its destination and renamed over it, so a worker killed
    mid-write leaves the previous checkpoint intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "progress": progress},
        partial,
    )
    os.replace(partial, path)


def load_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore ``model`` and ``optimizer`` from ``path``; return the stored progress."""
    device = next(model.parameters(), torch.empty(0)).device
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    progress: dict[str, Any] = state["progress"]
    return progress
