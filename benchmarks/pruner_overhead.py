"""Mean ``should_prune`` latency: SuccessiveHalvingEnergyPruner against Optuna's pruner.

One report sequence (default 1000 trials x 8 steps) goes through each pruner on its own SQLite
file, trial by trial in alternation so that both see the same machine load. Only the
``should_prune`` call is timed. Prints the mean latency of each and the ratio ours / Optuna's.

    python benchmarks/pruner_overhead.py [--trials 1000] [--steps 8]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from optuna_sm2 import SuccessiveHalvingEnergyPruner, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    rng = random.Random(args.seed)
    sequence = [
        [(rng.random(), rng.uniform(50, 500), 10 ** rng.uniform(-3, 0)) for _ in range(args.steps)]
        for _ in range(args.trials)
    ]
    rung_args = {"min_resource": 1, "reduction_factor": 2}
    contenders = {
        "optuna SuccessiveHalvingPruner": optuna.pruners.SuccessiveHalvingPruner(**rung_args),
        "SuccessiveHalvingEnergyPruner alpha=1": SuccessiveHalvingEnergyPruner(
            **rung_args, alpha=1.0
        ),
        "SuccessiveHalvingEnergyPruner alpha=0.75": SuccessiveHalvingEnergyPruner(**rung_args),
    }
    with tempfile.TemporaryDirectory() as tmp:
        studies = {
            name: optuna.create_study(
                storage=f"sqlite:///{Path(tmp) / f'{i}.db'}", direction="maximize", pruner=pruner
            )
            for i, (name, pruner) in enumerate(contenders.items())
        }
        latencies: dict[str, list[float]] = {name: [] for name in studies}
        pruned = dict.fromkeys(studies, 0)
        for reports in sequence:
            for name, study in studies.items():
                trial = study.ask()
                for step, (value, energy, lr) in enumerate(reports):
                    report(trial, value, step, energy_per_epoch_j=energy, stable_lr=lr)
                    start = time.perf_counter()
                    decision = trial.should_prune()
                    latencies[name].append(time.perf_counter() - start)
                    if decision:
                        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                        pruned[name] += 1
                        break
                else:
                    study.tell(trial, reports[-1][0])

    print(f"{args.trials} trials x {args.steps} steps, SQLite, {platform.processor() or 'cpu'}")
    base = statistics.fmean(latencies["optuna SuccessiveHalvingPruner"])
    for name, times in latencies.items():
        mean = statistics.fmean(times)
        print(
            f"{name:42s} calls {len(times):6d}  pruned {pruned[name]:5d}  "
            f"mean {mean * 1e3:7.3f} ms  ratio {mean / base:5.2f}"
        )


if __name__ == "__main__":
    main()
