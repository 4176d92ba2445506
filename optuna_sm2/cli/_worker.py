"""``optuna-sm2 worker``: one process, one GPU, trials of a shared study."""

from __future__ import annotations

import argparse
import os
from typing import Any

import optuna

from optuna_sm2.cli._common import (
    CLIError,
    add_schedule_options,
    make_sqlite_parent,
    open_storage,
)

SCENARIOS = ("demo",)


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
    parser.add_argument("--scenario", required=True, choices=SCENARIOS, help="the workload")
    parser.add_argument("--n-trials", type=int, required=True, help="trials this worker runs")
    parser.add_argument(
        "--gpu",
        metavar="K",
        help="train on this GPU only (index or UUID); sets CUDA_VISIBLE_DEVICES, so the "
        "energy meter measures this card alone",
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
    add_schedule_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n_trials < 1:
        raise CLIError(f"--n-trials must be >= 1, got {args.n_trials}")
    if args.heartbeat_interval < 1:
        raise CLIError(f"--heartbeat-interval must be >= 1 second, got {args.heartbeat_interval}")
    if args.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu
    import torch

    from optuna_sm2.demo import demo_objective

    if args.gpu is not None and not torch.cuda.is_available():
        raise CLIError(f"--gpu {args.gpu} given, but torch sees no CUDA device here")
    torch.set_num_threads(1 if args.gpu is None else torch.get_num_threads())

    make_sqlite_parent(args.storage)
    database = "://" in args.storage and not args.storage.startswith(("redis", "unix"))
    storage = open_storage(
        args.storage,
        must_exist=False,
        heartbeat_interval=args.heartbeat_interval if database else None,
    )
    objective = demo_objective(
        epochs_per_rung=args.epochs_per_rung,
        final_epochs=args.final_epochs,
        n_lrs=args.n_lrs,
        device="cuda" if args.gpu is not None else "cpu",
        checkpoint_dir=args.checkpoint_dir,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=args.study,
        direction="maximize",
        pruner=objective.make_pruner(alpha=args.alpha, beta=args.beta),
        load_if_exists=True,
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
