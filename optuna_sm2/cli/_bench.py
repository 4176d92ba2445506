"""``optuna-sm2 bench``: the paper's Table 1 and Fig. 2 on the scenarios, SM² against vanilla
training, TPE + Hyperband and training every batch size, over several seeds."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from optuna_sm2.cli._common import CLIError
from optuna_sm2.cli._options import add_int, add_name_list, add_real, add_text

SCENARIO_CHOICES = ("vision", "household", "text", "all")
BUDGET_CHOICES = ("tiny", "small", "paper")
ARMS = ("vanilla", "alpha1", "sm2", "tpe_hyperband", "grid", "zeus_cost")
"""The arms ``--arms`` selects from: ``optuna_sm2.scenarios._results.ARMS`` (a test keeps the two
equal; this module may not import the scenarios, which import torch)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark SM² against vanilla training, TPE + Hyperband and a full grid",
        description=(
            "For each scenario and seed, in this process, one after another with the same "
            "energy meter, the arms: vanilla (one ordinary training run of the middle batch "
            "size at a conventional LR with early stopping), alpha1 (SM² with alpha=1), sm2 "
            "(SM² with alpha=0.75, beta=0.5), tpe_hyperband (Optuna's TPESampler over batch "
            "size and a log-uniform LR with HyperbandPruner, plain training, twice as many "
            "trials as batch sizes), grid (every batch size through the whole SM² schedule, "
            "no pruning, its measurements stored as tables for --replay) and zeus_cost (Zeus's "
            "batch-size optimizer, eta 0.5, beta 2, target the grid's best metric - 2%). Writes "
            "DIR/results.json (means over seeds and each seed), "
            "DIR/results.md (tables and targets), DIR/<scenario>.png (the paper's Fig. 2) and "
            "DIR/arms.png; each arm and seed is stored as it finishes, and the same command run "
            "again goes on from there. Needs the data packages: pip install "
            "'optuna-sm2[scenarios]'."
        ),
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIO_CHOICES,
        default="all",
        help="vision (ResNet/MNIST), household (LSTM/UCI power), text (Transformer/Python "
        "docs) or all (default)",
    )
    parser.add_argument(
        "--budget",
        choices=BUDGET_CHOICES,
        default="small",
        help="small: about 35 minutes per seed with every arm on 2 busy CPU cores (default); "
        "paper: the paper's settings, for a GPU (8 batch sizes, 20 LRs from 1e-3 to 1, 5 then 10 "
        "epochs); tiny: seconds, a smoke test",
    )
    add_text(
        parser,
        "--out",
        metavar="DIR",
        help="folder for the results (required unless --replay; with --replay, default: its "
        "folder); a bench run again with the same DIR skips what it finished",
    )
    add_text(
        parser,
        "--replay",
        metavar="DIR",
        help="train nothing: re-run every pruning rule (alpha 1, 0.9, 0.75, 0.5, beta 0 and 1, "
        "the paper's ranking, Optuna's SuccessiveHalvingPruner, and an alpha-beta curve) on "
        "the grid tables under DIR (searched recursively) and write replay.md, replay.json and "
        "replay.png to --out",
    )
    add_int(parser, "--seed", low=0, high=2**32 - 1, default=0, help="the first seed (0)")
    add_int(
        parser,
        "--seeds",
        low=1,
        high=100,
        help="run every arm with this many seeds, --seed, --seed + 1, ... (default: one)",
    )
    add_name_list(parser, "--arms", ARMS, help="the arms to run (default: every one)")
    add_real(
        parser,
        "--max-minutes",
        low=0.1,
        default=None,
        help="start no arm-seed run and no grid configuration after this many minutes; what "
        "finished is stored in DIR, and the same command run again goes on from there",
    )
    add_text(
        parser,
        "--device",
        default=None,
        help="torch device (default: cuda when available, else cpu)",
    )
    add_int(
        parser,
        "--threads",
        low=1,
        high=1024,
        default=None,
        help="torch CPU threads (default: 1 on CPU, which is fastest on a small busy machine; "
        "torch's own choice on a GPU)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.replay is not None:
        return _replay(args.replay, args.out or args.replay)
    if args.out is None:
        raise CLIError(
            "the following arguments are required: --out (unless --replay) "
            "(see optuna-sm2 bench --help)"
        )
    import optuna
    import torch

    from optuna_sm2.scenarios import SCENARIOS, ScenarioDataMissing, run_bench

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out} exists and is not a folder")
    extra = _runner_options(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise CLIError(f"--device: {exc}") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {device} given, but torch sees no CUDA device here")
    threads = args.threads if args.threads is not None else (1 if device == "cpu" else None)
    if threads is not None:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"{time.perf_counter() - start:7.1f}s {message}", file=sys.stderr, flush=True)

    try:
        results = run_bench(
            names,
            args.budget,
            args.out,
            seed=args.seed,
            device=device,
            progress=progress,
            **extra,
        )
    except ScenarioDataMissing as exc:
        raise CLIError(str(exc)) from exc
    if not results and not Path(args.out, "results.md").is_file():
        print(f"nothing finished yet: run the same command again to go on ({args.out})")
        return 0
    print(Path(args.out, "results.md").read_text())
    print(f"written: {Path(args.out).resolve()}/results.json, results.md and the figures")
    print(f"{len(results)} scenario(s) in {time.perf_counter() - start:.0f} s")
    return 0


def _replay(folder: str, out: str) -> int:
    from optuna_sm2.scenarios import run_replay

    if not os.path.isdir(folder):
        raise CLIError(f"--replay {folder} is not a folder")
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out {out} exists and is not a folder")
    start = time.perf_counter()
    print(run_replay(folder, out))
    print(f"written: {Path(out).resolve()}/replay.md, replay.json and replay.png")
    print(f"replayed in {time.perf_counter() - start:.1f} s")
    return 0


def _runner_options(args: argparse.Namespace) -> dict[str, Any]:
    """``seeds``, ``arms`` and ``max_minutes`` for the bench runner, when given (else the
    runner's defaults: one seed, every arm, no time limit)."""
    given = {name: getattr(args, name) for name in ("seeds", "arms", "max_minutes")}
    return {name: value for name, value in given.items() if value is not None}
