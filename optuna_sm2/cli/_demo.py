"""``optuna-sm2 demo``: an SM² study end to end on scikit-learn's digits."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from optuna_sm2.analysis._summary import summarize_study
from optuna_sm2.cli._common import (
    add_schedule_options,
    make_sqlite_parent,
    open_storage,
    sm2_study,
)
from optuna_sm2.cli._report import format_report

DEFAULT_STORAGE = "sqlite:///studies/demo.db"
DEFAULT_STUDY = "sm2-demo"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run an SM² study on scikit-learn's digits and print its energy report",
        description=(
            "Run the paper's synchronous SM² schedule on scikit-learn's handwritten digits: "
            "8 batch sizes explore, train and are halved down to one, every "
            "epoch energy-tracked, the study stored in SQLite; then print the report. Running "
            "it again shows the stored study's report (--fresh starts over)."
        ),
    )
    parser.add_argument("--storage", default=DEFAULT_STORAGE, metavar="URL", help="%(default)s")
    parser.add_argument("--study", default=DEFAULT_STUDY, metavar="NAME", help="%(default)s")
    parser.add_argument("--fresh", action="store_true", help="delete the study and run again")
    add_schedule_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from optuna_sm2 import optimize_synchronous
    from optuna_sm2.scenarios.digits import DEMO_BATCH_SIZES, demo_objective

    # The MLP is tiny: one thread trains it faster, and steadies a CPU-time energy estimate
    # (idle worker threads spinning would otherwise be counted as work).
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    make_sqlite_parent(args.storage)
    storage = open_storage(args.storage, must_exist=False)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if args.study in existing and args.fresh:
        optuna.delete_study(study_name=args.study, storage=storage)
        print(f"deleted the existing study {args.study!r}; starting over")
    elif args.study in existing and existing[args.study].n_trials > 0:
        print(
            f"study {args.study!r} in {args.storage} already holds "
            f"{existing[args.study].n_trials} trials: here is its report "
            "(run with --fresh to delete it and run again)\n"
        )
        study = optuna.load_study(study_name=args.study, storage=storage)
        print(format_report(summarize_study(study)))
        return 0

    objective = demo_objective(
        epochs_per_rung=args.epochs_per_rung,
        final_epochs=args.final_epochs,
        n_lrs=args.n_lrs,
        device="cpu",
        checkpoint_dir=str(Path("studies") / "checkpoints"),
    )
    study = sm2_study(
        storage, args.study, objective, direction="maximize", alpha=args.alpha, beta=args.beta
    )
    print(
        f"SM² demo: {len(DEMO_BATCH_SIZES)} batch sizes {DEMO_BATCH_SIZES} on digits "
        f"(an MLP, accuracy), rungs at steps "
        f"{objective.rung_steps}, alpha={args.alpha}, beta={args.beta}; "
        f"energy source: {objective.tracker.source}"
        f"{' (an ESTIMATE, not a measurement)' if objective.tracker.is_estimate else ''}",
        flush=True,
    )
    start = time.perf_counter()
    with _progress_to_stdout():
        optimize_synchronous(study, objective)
    print(f"\nfinished in {time.perf_counter() - start:.1f} s\n")
    print(format_report(summarize_study(study)))
    return 0


@contextlib.contextmanager
def _progress_to_stdout() -> Iterator[None]:
    """Print the library's INFO log lines (one per step and decision) while the demo runs."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    logger = logging.getLogger("optuna_sm2")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
