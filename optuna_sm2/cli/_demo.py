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
from optuna.trial import TrialState

from optuna_sm2 import attrs as _attrs
from optuna_sm2.analysis import summarize_study
from optuna_sm2.cli._common import (
    CLIError,
    check_writable_folder,
    load_study,
    make_sqlite_parent,
    open_storage,
    require,
    storage_failure,
    storage_failures,
)
from optuna_sm2.cli._options import add_schedule_options, add_text
from optuna_sm2.cli._report import format_report
from optuna_sm2.cli._study import FLAGS, create_study, plan_run, unchecked

DEFAULT_STORAGE = "sqlite:///studies/demo.db"
DEFAULT_STUDY = "sm2-demo"
_KEEP = "leave the option out to use the study's own, or add --fresh to delete it and start over"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run an SM² study on scikit-learn's digits and print its energy report",
        description=(
            "Run the paper's synchronous SM² schedule on scikit-learn's handwritten digits: "
            "8 batch sizes explore, train and are halved down to one, every "
            "epoch energy-tracked, the study stored in SQLite; then print the report. Running "
            "it again finishes an interrupted study where it stopped, or shows a finished "
            "study's report (--fresh starts over). Every option is "
            "checked before anything is created or deleted; an option that differs from the "
            "stored study's is refused (with --fresh it applies to the new study)."
        ),
    )
    add_text(parser, "--storage", default=DEFAULT_STORAGE, metavar="URL", help="%(default)s")
    add_text(
        parser,
        "--study",
        max_length=512,
        default=DEFAULT_STUDY,
        metavar="NAME",
        help="%(default)s",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete the study (an SM² one only) and run again, once every option is checked",
    )
    add_schedule_options(
        parser,
        {"epochs_per_rung": "5 (the paper's)", "final_epochs": "10 (the paper's)", "n_lrs": "20"},
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require("the demo", "torch", "sklearn")
    import torch

    from optuna_sm2 import optimize_synchronous
    from optuna_sm2.scenarios.digits import DEMO_BATCH_SIZES, demo_objective

    # The MLP is tiny: one thread trains it faster, and steadies a CPU-time energy estimate
    # (idle worker threads spinning would otherwise be counted as work).
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Everything is read and checked first; only then is anything created or deleted.
    given = {k: getattr(args, k) for k in FLAGS}
    checkpoints = str(Path("studies") / "checkpoints")
    plan = plan_run(
        args.storage,
        args.study,
        given,
        lambda **settings: demo_objective(**settings, device="cpu", checkpoint_dir=checkpoints),
        "maximize",
        "the demo (accuracy)",
        _KEEP,
        fresh=args.fresh,
    )
    joined, settings, objective = plan.joined, plan.settings, plan.objective
    resuming = False
    if joined is not None and joined.n_trials > 0:
        if options := unchecked(given, joined):
            raise CLIError(
                f"{joined.where} does not store what it ran with for {', '.join(options)} "
                f"({_attrs.PRUNER}), so the value given cannot be checked: {_KEEP}"
            )
        stored = load_study(args.storage, args.study)
        unfinished = _unfinished(stored, args.storage)
        if not unfinished:
            print(
                f"study {args.study!r} in {args.storage} already holds {joined.n_trials} "
                "trials: here is its report (run with --fresh to delete it and run again)\n"
            )
            print(format_report(summarize_study(stored)))
            print(_next_steps(args))
            return 0
        resuming = True
        print(
            f"study {args.study!r} in {args.storage} is unfinished ({unfinished}): resuming "
            "it where it stopped (run with --fresh to delete it and start over)"
        )

    check_writable_folder(checkpoints, "the demo's checkpoint folder")
    make_sqlite_parent(args.storage)
    storage = open_storage(args.storage, must_exist=False)
    if plan.stored is not None and args.fresh:
        try:
            optuna.delete_study(study_name=args.study, storage=storage)
        except storage_failures() as exc:
            raise storage_failure("delete the study from", args.storage, exc) from exc
        print(f"deleted the existing study {args.study!r}; starting over")
    study = create_study(args.storage, storage, args.study, objective, plan.pruner, "maximize")
    print(
        f"SM² demo: {len(DEMO_BATCH_SIZES)} batch sizes {DEMO_BATCH_SIZES} on digits "
        f"(an MLP, accuracy), rungs at steps "
        f"{objective.rung_steps}, alpha={settings['alpha']}, beta={settings['beta']}; "
        f"energy source: {objective.tracker.source}"
        f"{' (an ESTIMATE, not a measurement)' if objective.tracker.is_estimate else ''}",
        flush=True,
    )
    start = time.perf_counter()
    with _progress_to_stdout():
        try:
            optimize_synchronous(study, objective)
        except storage_failures() as exc:
            raise storage_failure("write to", args.storage, exc) from exc
        except KeyboardInterrupt:
            print(
                f"\ninterrupted: study {args.study!r} is unfinished; run the same command "
                "again to finish it",
                flush=True,
            )
            raise
    print(
        f"\n{'resumed and ' if resuming else ''}finished in {time.perf_counter() - start:.1f} s\n"
    )
    print(format_report(summarize_study(study)))
    print(_next_steps(args))
    return 0


def _next_steps(args: argparse.Namespace) -> str:
    """Where the study is stored and the commands that read it."""
    return (
        f"\nthe study {args.study!r} is stored in {args.storage}; next:\n"
        f"  optuna-sm2 report --storage {args.storage} --study {args.study}\n"
        f"  optuna-sm2 dashboard --storage {args.storage}"
    )


def _unfinished(study: optuna.Study, url: str) -> str:
    """What is unfinished in ``study`` (RUNNING or WAITING trials), in words; ``""`` if nothing."""
    try:
        trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    except storage_failures() as exc:
        raise storage_failure("read", url, exc) from exc
    counts = [
        f"{n} {state.name}"
        for state in (TrialState.RUNNING, TrialState.WAITING)
        if (n := sum(t.state == state for t in trials))
    ]
    return ", ".join(counts)


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
