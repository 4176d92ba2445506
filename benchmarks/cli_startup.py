"""Start-up time of the torch-free CLI: ``optuna-sm2 report --help`` against ``import optuna``.

Each round runs both commands as fresh processes, one right after the other so that both see the
same machine load, and times them from process start to exit. Prints the median of each, the ratio
ours / Optuna's per round and its median (target: at most 1.5x), and whether torch was imported.

    python benchmarks/cli_startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from datetime import date

COMMANDS = {
    "optuna-sm2 report --help": [sys.executable, "-m", "optuna_sm2.cli", "report", "--help"],
    'python -c "import optuna"': [sys.executable, "-c", "import optuna"],
}

TORCH_CHECK = (
    "import sys; from optuna_sm2.cli import main\n"
    "try:\n    main(['report', '--help'])\nexcept SystemExit:\n    pass\n"
    "print('torch' in sys.modules, file=sys.stderr)"
)


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache once
        _seconds(command)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            times[name].append(_seconds(command))
    ours, optuna_times = times["optuna-sm2 report --help"], times['python -c "import optuna"']
    ratios = [a / b for a, b in zip(ours, optuna_times, strict=True)]
    torch = subprocess.run(
        [sys.executable, "-c", TORCH_CHECK], capture_output=True, text=True, check=True
    ).stderr.strip()
    print(f"{date.today()}  {platform.processor() or platform.machine()}  {args.rounds} rounds")
    for name, values in times.items():
        print(f"{name:28s} median {statistics.median(values) * 1000:7.1f} ms")
    print(
        f"ratio report --help / import optuna: median {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x); target <= 1.5x"
    )
    print(f"torch imported by report --help: {torch}")


if __name__ == "__main__":
    main()
