"""``optuna-sm2 worker``: one process, one GPU, trials of a shared study."""

from __future__ import annotations

import argparse
import os
from typing import Any, Literal

import optuna

from optuna_sm2.cli._common import (
    CLIError,
    add_pruner_options,
    make_sqlite_parent,
    open_storage,
    sm2_study,
)

SCENARIOS = ("demo", "vision", "household", "text")
BUDGETS = ("tiny", "small", "paper")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run trials of a shared SM² study (start one per GPU, on any number of machines)",
        description=(
            "Run --n-trials trials of an SM² study asynchronously (study.optimize with the "
            "objective's pruner). Start one worker per GPU, on as many machines as you like, "
            "all on the same storage: PostgreSQL or MySQL (with heartbeats, so a killed worker's "
            "trial is retried and resumes from its checkpoint), SQLite on one machine, or a "
            "JournalStorage (a .log file, or redis://). See docs/distributed.md."
        ),
    )
    parser.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="sqlite:///..., postgresql://..., any URL Optuna takes; a .log journal file; redis://",
    )
    parser.add_argument("--study", required=True, metavar="NAME", help="study name (shared)")
    parser.add_argument(
        "--scenario",
        required=True,
        choices=SCENARIOS,
        help="demo: the digits study of `optuna-sm2 demo`; vision, household, text: the "
        "benchmark scenarios (extra [scenarios])",
    )
    parser.add_argument("--n-trials", type=int, required=True, help="trials this worker runs")
    parser.add_argument(
        "--gpu",
        metavar="K",
        help="train on this GPU only (index or UUID); sets CUDA_VISIBLE_DEVICES, so the "
        "energy meter measures this card alone",
    )
    parser.add_argument(
        "--budget",
        choices=BUDGETS,
        default="small",
        help="benchmark scenarios' size (%(default)s)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=int,
        default=60,
        metavar="S",
        help="database storages: seconds between heartbeats; a trial silent for twice as "
        "long is retried (default %(default)s)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=os.path.join("studies", "checkpoints"),
        help="where trials checkpoint after each rung (default %(default)s); must be shared "
        "by the workers for a retried trial to resume on another machine",
    )
    for option in ("--epochs-per-rung", "--final-epochs", "--n-lrs"):
        parser.add_argument(option, type=int, help="override the scenario's value")
    add_pruner_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n_trials < 1:
        raise CLIError(f"--n-trials must be >= 1, got {args.n_trials}")
    if args.heartbeat_interval < 1:
        raise CLIError(f"--heartbeat-interval must be >= 1 second, got {args.heartbeat_interval}")
    if args.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu
    import torch

    from optuna_sm2.scenarios import load_scenario
    from optuna_sm2.scenarios.digits import demo_objective

    if args.gpu is not None and not torch.cuda.is_available():
        raise CLIError(f"--gpu {args.gpu} given, but torch sees no CUDA device here")
    if args.gpu is None:
        torch.set_num_threads(1)  # one worker per core on a CPU machine
    device = "cuda" if args.gpu is not None else "cpu"
    overrides = {
        name: getattr(args, name)
        for name in ("epochs_per_rung", "final_epochs", "n_lrs")
        if getattr(args, name) is not None
    }
    if args.scenario == "demo":
        objective = demo_objective(device=device, checkpoint_dir=args.checkpoint_dir, **overrides)
        direction: Literal["minimize", "maximize"] = "maximize"
    else:
        scenario = load_scenario(args.scenario, args.budget)
        objective = scenario.objective(
            device=device, checkpoint_dir=args.checkpoint_dir, **overrides
        )
        direction = scenario.direction

    make_sqlite_parent(args.storage)
    database = "://" in args.storage and not args.storage.startswith(("redis", "unix"))
    storage = open_storage(
        args.storage,
        must_exist=False,
        heartbeat_interval=args.heartbeat_interval if database else None,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = sm2_study(
        storage, args.study, objective, direction=direction, alpha=args.alpha, beta=args.beta
    )
    print(
        f"worker pid {os.getpid()}: {args.n_trials} trials of {args.study!r} "
        f"({args.scenario}), energy source {objective.tracker.source}",
        flush=True,
    )
    study.optimize(objective, n_trials=args.n_trials)
    done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    print(f"worker pid {os.getpid()}: done; the study holds {len(done)} finished trials")
    return 0
