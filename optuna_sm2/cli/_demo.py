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
from sqlalchemy.engine import make_url

from optuna_sm2._study_report import summarize_study
from optuna_sm2.cli._common import CLIError, open_storage
from optuna_sm2.cli._report import format_report

DEFAULT_STORAGE = "sqlite:///studies/demo.db"
DEFAULT_STUDY = "sm2-demo"
BATCH_SIZES = (4, 8, 16, 32, 64, 128, 256, 512)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run an SM² study on scikit-learn's digits and print its energy report",
        description=(
            "Run the paper's synchronous SM² schedule on scikit-learn's handwritten digits: "
            f"{len(BATCH_SIZES)} batch sizes explore, train and are halved down to one, every "
            "epoch energy-tracked, the study stored in SQLite; then print the report. Running "
            "it again shows the stored study's report (--fresh starts over)."
        ),
    )
    parser.add_argument("--storage", default=DEFAULT_STORAGE, metavar="URL", help="%(default)s")
    parser.add_argument("--study", default=DEFAULT_STUDY, metavar="NAME", help="%(default)s")
    parser.add_argument("--fresh", action="store_true", help="delete the study and run again")
    parser.add_argument("--epochs-per-rung", type=int, default=5, help="%(default)s (paper: 5)")
    parser.add_argument("--final-epochs", type=int, default=10, help="%(default)s (paper: 10)")
    parser.add_argument("--n-lrs", type=int, default=20, help="%(default)s (paper: 20)")
    parser.add_argument("--alpha", type=float, default=0.75, help="%(default)s (paper: 0.75)")
    parser.add_argument("--beta", type=float, default=0.5, help="%(default)s (paper: 0.5)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.nn.functional import cross_entropy

    from optuna_sm2 import SM2Objective, optimize_synchronous
    from optuna_sm2.demo import accuracy, build_mlp, load_digits

    # The MLP is tiny: one thread trains it faster, and steadies a CPU-time energy estimate
    # (idle worker threads spinning would otherwise be counted as work).
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _make_sqlite_parent(args.storage)
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

    train, valid = load_digits()
    objective = SM2Objective(
        lambda trial: build_mlp(hidden=64),
        train,
        valid,
        cross_entropy,
        accuracy,
        batch_sizes=BATCH_SIZES,
        n_lrs=args.n_lrs,
        epochs_per_rung=args.epochs_per_rung,
        final_epochs=args.final_epochs,
        device="cpu",
        checkpoint_dir=Path("studies") / "checkpoints",
        metric_name="accuracy",
    )
    study = optuna.create_study(
        storage=storage,
        study_name=args.study,
        direction="maximize",
        pruner=objective.make_pruner(alpha=args.alpha, beta=args.beta),
        load_if_exists=True,
    )
    print(
        f"SM² demo: {len(BATCH_SIZES)} batch sizes {BATCH_SIZES} on digits "
        f"({len(train[1])} train / {len(valid[1])} validation images), rungs at steps "
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


def _make_sqlite_parent(storage: str) -> None:
    if storage.startswith("sqlite:///"):
        database = make_url(storage).database
        if database and database != ":memory:":
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CLIError(f"cannot create the folder for {database}: {exc}") from exc


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
