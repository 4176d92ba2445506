"""``optuna-sm2 worker``: one process, one GPU, trials of a shared study."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from optuna_sm2 import _compat
from optuna_sm2 import attrs as _attrs
from optuna_sm2.cli._common import (
    CLIError,
    check_writable_folder,
    make_sqlite_parent,
    open_storage,
    require,
    storage_failure,
    storage_failure_in,
    storage_failures,
)
from optuna_sm2.cli._options import add_int, add_schedule_options, add_text
from optuna_sm2.cli._study import FLAGS, Direction, create_study, plan_run, unchecked

if TYPE_CHECKING:
    from optuna_sm2.training import SM2Objective

SCENARIOS = ("demo", "vision", "household", "text")
BUDGETS = ("tiny", "small", "paper")
HEARTBEAT_MAX_S = 86400
"""The longest heartbeat interval taken (a day): longer ones would leave a killed trial RUNNING
for days, and beyond what a thread can wait for."""
_KEEP = "leave the option out to use the study's own, or choose another --study"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run trials of a shared SM² study (start one per GPU, on any number of machines)",
        description=(
            "Run --n-trials trials of an SM² study asynchronously (study.optimize with the "
            "objective's pruner). Start one worker per GPU, on as many machines as you like, "
            "all on the same storage: PostgreSQL or MySQL, SQLite on one machine, or a "
            "JournalStorage (a .log file, or redis://). A killed worker's trial is retried and "
            "resumes from its checkpoint (a heartbeat on databases, a lease on journals). A "
            "worker joins an existing study only if it is SM²'s with the same direction, "
            "schedule and pruner; options left out take the study's values. See "
            "docs/distributed.md and docs/reliability.md."
        ),
    )
    add_text(
        parser,
        "--storage",
        required=True,
        metavar="URL",
        help="sqlite:///..., postgresql://..., any URL Optuna takes; a .log journal file; redis://",
    )
    add_text(
        parser,
        "--study",
        max_length=512,
        required=True,
        metavar="NAME",
        help="study name (shared)",
    )
    parser.add_argument(
        "--scenario",
        required=True,
        choices=SCENARIOS,
        help="demo: the digits study of `optuna-sm2 demo`; vision, household, text: the "
        "benchmark scenarios (extra [scenarios])",
    )
    add_int(parser, "--n-trials", low=1, required=True, help="trials this worker runs")
    add_text(
        parser,
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
    add_int(
        parser,
        "--heartbeat-interval",
        low=1,
        high=HEARTBEAT_MAX_S,
        default=60,
        metavar="S",
        help="seconds between a running trial's heartbeats (database) or lease renewals "
        "(journal); a trial silent for twice as long is retried (default %(default)s)",
    )
    add_text(
        parser,
        "--checkpoint-dir",
        default=os.path.join("studies", "checkpoints"),
        help="where trials checkpoint after each rung (default %(default)s); must be shared "
        "by the workers for a retried trial to resume on another machine",
    )
    add_schedule_options(
        parser,
        {name: "the scenario's" for name in ("epochs_per_rung", "final_epochs", "n_lrs")},
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if os.path.isfile(args.checkpoint_dir):
        raise CLIError(f"--checkpoint-dir {args.checkpoint_dir} is a file, not a folder")
    require("a worker", "torch", *(("sklearn",) if args.scenario == "demo" else ()))
    if args.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu
    import torch

    if args.gpu is not None and not torch.cuda.is_available():
        raise CLIError(f"--gpu {args.gpu} given, but torch sees no CUDA device here")
    if args.gpu is None:
        torch.set_num_threads(1)  # one worker per core on a CPU machine
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    # Everything is read and checked first; the storage and the study are created only then.
    build, direction, what = _scenario(args, "cuda" if args.gpu is not None else "cpu")
    given = {k: getattr(args, k) for k in FLAGS}
    plan = plan_run(args.storage, args.study, given, build, direction, what, _KEEP)
    objective, settings = plan.objective, plan.settings

    check_writable_folder(args.checkpoint_dir, "--checkpoint-dir")
    make_sqlite_parent(args.storage)
    storage = open_storage(
        args.storage, must_exist=False, heartbeat_interval=args.heartbeat_interval
    )
    study = create_study(args.storage, storage, args.study, objective, plan.pruner, direction)
    print(
        f"worker pid {os.getpid()}: {args.n_trials} trials of {args.study!r} ({what}), "
        f"rungs at steps {objective.rung_steps}, alpha={settings['alpha']}, "
        f"beta={settings['beta']}, energy source {objective.tracker.source}",
        flush=True,
    )
    if options := unchecked(given, plan.joined):
        print(
            f"note: {args.study!r} does not store what it ran with for {', '.join(options)} "
            f"({_attrs.PRUNER}): this worker uses the values given",
            flush=True,
        )
    _optimize(study, objective, args.n_trials, args.storage)
    try:
        done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    except storage_failures() as exc:
        raise storage_failure("read", args.storage, exc) from exc
    print(f"worker pid {os.getpid()}: done; the study holds {len(done)} finished trials")
    return 0


def _scenario(
    args: argparse.Namespace, device: str
) -> tuple[Callable[..., SM2Objective], Direction, str]:
    """How to build the scenario's objective (given schedule settings), its direction, its name."""
    if args.scenario == "demo":
        from optuna_sm2.scenarios.digits import demo_objective

        def build_demo(**settings: Any) -> SM2Objective:
            return demo_objective(device=device, checkpoint_dir=args.checkpoint_dir, **settings)

        return build_demo, "maximize", "the demo scenario (accuracy)"
    from optuna_sm2.scenarios import ScenarioDataMissing, load_scenario

    try:
        scenario = load_scenario(args.scenario, args.budget)
    except ScenarioDataMissing as exc:
        raise CLIError(str(exc)) from exc

    def build(**settings: Any) -> SM2Objective:
        return scenario.objective(device=device, checkpoint_dir=args.checkpoint_dir, **settings)

    what = f"the {args.scenario} scenario ({scenario.metric_name}, budget {args.budget})"
    return build, scenario.direction, what


class _StorageLost(BaseException):
    """The storage failed inside the objective: raised past Optuna (not an ``Exception``), so
    that it neither tells the trial nor logs a traceback, and the trial stays RUNNING with its
    heartbeat and lease, from which the next worker retries it (see :func:`_optimize`)."""

    def __init__(self, failure: BaseException) -> None:
        super().__init__(failure)
        self.failure = failure


def _optimize(study: optuna.Study, objective: SM2Objective, n_trials: int, url: str) -> None:
    """``study.optimize``; a Ctrl-C fails the running trial and queues it again (as a heartbeat
    retry, so that the next worker resumes it from its checkpoint) before it is passed on.

    A storage that fails at any point ends the worker with one line (a :class:`CLIError`). One
    that fails inside a trial leaves the trial RUNNING, as a kill would: its heartbeat and lease
    stop, and the next worker to start a trial once the storage is back fails it and queues its
    retry (at once on this machine, where the lease names a process that has ended; elsewhere
    after two heartbeat intervals), which resumes from the trial's last checkpoint.
    """
    current: list[int] = []

    def trial_of_this_worker(trial: optuna.trial.Trial) -> float:
        current[:] = [trial.number]
        try:
            return objective(trial)
        except KeyboardInterrupt:
            # Optuna logs the failed trial with the interrupt's traceback: one line is enough.
            optuna.logging.set_verbosity(optuna.logging.ERROR)
            raise
        except Exception as exc:
            if (failure := storage_failure_in(exc)) is not None:
                raise _StorageLost(failure) from exc
            raise

    try:
        study.optimize(trial_of_this_worker, n_trials=n_trials)
    except KeyboardInterrupt:
        if current:
            _queue_again(study, current[0])
        raise
    except _StorageLost as lost:
        raise storage_failure("write to", url, lost.failure) from lost.failure
    except Exception as exc:
        if (failure := storage_failure_in(exc)) is None:
            raise
        raise storage_failure("write to", url, failure) from failure


def _queue_again(study: optuna.Study, number: int) -> None:
    """Queue a copy of the interrupted trial ``number``, as Optuna's heartbeat retry would."""
    try:
        (trial,) = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if trial.state != TrialState.FAIL:
            return  # interrupted outside the objective: its heartbeat or lease will tell
        _compat.queue_retry(study, trial)
    except storage_failures():
        return  # the storage failed too: the interrupt is what to report
    print(
        f"worker pid {os.getpid()}: interrupted; trial {number} failed and is queued again, "
        "the next worker resumes it from its last checkpoint",
        flush=True,
    )
