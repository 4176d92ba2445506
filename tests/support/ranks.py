"""What one rank of a two-process ``gloo`` group measures, for tests/integration (imports torch
and optuna-sm2 only, so that each spawned process starts fast)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch.distributed as dist

from optuna_sm2 import EnergyTracker, TrialEnergy
from optuna_sm2.energy import EnergyReadError
from optuna_sm2.training._distributed import DistributedEnergyTracker
from tests.support.meters import CoarseMeter, ScriptedMeter, StepMeter

POWERS = (10.0, 30.0)
"""Rank r's meter draws POWERS[r]: every summed window holds 40 J."""


def measure_on_rank(rank: int, world_size: int, tmp: str) -> None:
    """What one rank measures, written to ``tmp/rank<r>.json``."""
    rendezvous = f"file://{tmp}/rendezvous"
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world_size)
    out: dict[str, Any] = {}
    tracker = DistributedEnergyTracker(EnergyTracker(StepMeter(POWERS[rank])))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracker.window() as summed:
            pass
    out["summed"] = [summed.joules, summed.valid, summed.source, tracker.source]
    out["warnings"] = [str(w.message) for w in caught]

    # A window invalid on rank 1 only is invalid on both ranks.
    meter = ScriptedMeter(0.0, EnergyReadError("counter gone") if rank == 1 else 5.0)
    with DistributedEnergyTracker(EnergyTracker(meter)).window() as partial:
        pass
    out["partial"] = [partial.valid, partial.invalid_reason]

    # Rank 1's window is shorter than its meter's step and estimated from power: the sum is an
    # estimate on both ranks, and says so.
    coarse = CoarseMeter(0.0, 0.0, power=30.0) if rank == 1 else StepMeter(10.0)
    with DistributedEnergyTracker(EnergyTracker(coarse)).window() as estimated:
        pass
    out["estimated"] = [estimated.valid, estimated.source, estimated.is_estimate]

    # Two ranks reading a meter of the whole host: rank 0 warns.
    host_wide = DistributedEnergyTracker(EnergyTracker(StepMeter(1.0, label="rapl")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with host_wide.window():
            pass
    out["host_warnings"] = [str(w.message) for w in caught]

    # A trial booked on every rank, written by rank 0 alone.
    study = optuna.load_study(study_name="ddp", storage=f"sqlite:///{tmp}/ddp.db")
    trial = (
        study.ask() if rank == 0 else optuna.trial.FixedTrial({}, number=0)
    )  # rank 1 never touches the study
    book = TrialEnergy(trial, tracker)
    for _ in range(3):
        with book.window("train"):
            pass
    with book.window("eval"):
        pass
    if rank == 0:
        study.tell(trial, 1.0)  # type: ignore[arg-type]
    out["book"] = [book.total_j, book.energy_per_epoch_j]
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))
    dist.destroy_process_group()
