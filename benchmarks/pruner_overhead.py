"""Mean ``should_prune`` latency: SuccessiveHalvingEnergyPruner against Optuna's pruner, by
study size.

For each size (1,000, 3,000, ... up to ``--trials``) one SQLite study is filled with that many
trials less ``--timed`` (values, energies and LRs drawn from a seeded RNG; each trial's state
and rung records under both pruners' keys, decided by Optuna's rule so that every pruner sees
the same study; filled without a sync per commit). The file is copied once per pruner; each
copy gets a fresh pruner, one untimed trial (so that both Optuna's storage cache and ours are
warm, as in a worker that has run a trial), then ``--timed`` trials, pruner by pruner in
alternation so that all see the same machine load. Only ``trial.should_prune()`` is timed.
Prints, per size, the mean latency of each pruner and the ratio ours / Optuna's.

    python benchmarks/pruner_overhead.py [--trials 10000] [--steps 4] [--timed 40]
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from optuna_sm2 import SuccessiveHalvingEnergyPruner, report
from optuna_sm2.pruners import RungRecord
from optuna_sm2.pruners._records import rung_key

SIZES = (1000, 3000, 10000)
RUNG_ARGS = {"min_resource": 1, "reduction_factor": 2}
OPTUNA = "optuna SuccessiveHalvingPruner"

Reports = list[tuple[float, float, float]]


def _pruners() -> dict[str, optuna.pruners.BasePruner]:
    return {
        OPTUNA: optuna.pruners.SuccessiveHalvingPruner(**RUNG_ARGS),
        "SuccessiveHalvingEnergyPruner alpha=1": SuccessiveHalvingEnergyPruner(
            **RUNG_ARGS, alpha=1.0
        ),
        "SuccessiveHalvingEnergyPruner alpha=0.75": SuccessiveHalvingEnergyPruner(**RUNG_ARGS),
    }


class _Filler:
    """Adds decided trials to a study: each rung as Optuna's rule decides it (kept sorted per
    rung), recorded under Optuna's key and as an SM² record."""

    def __init__(self, study: optuna.Study, steps: int) -> None:
        self.study = study
        self.rung_steps = [2**r for r in range(steps) if 2**r < steps]
        self.sorted: list[list[float]] = [[] for _ in self.rung_steps]

    def add(self, number: int, reports: Reports) -> None:
        system: dict[str, object] = {}
        state, last = TrialState.COMPLETE, len(reports) - 1
        for rung, step in enumerate(self.rung_steps):
            value, energy, lr = reports[step]
            competing = self.sorted[rung]
            bisect.insort(competing, value)
            k = max(len(competing) // RUNG_ARGS["reduction_factor"], 1)
            promoted = value >= competing[-k]
            system[f"completed_rung_{rung}"] = value
            system[rung_key(rung)] = RungRecord(number, value, energy, lr).to_json()
            if not promoted:
                state, last = TrialState.PRUNED, step
                break
        # What the pruners read of other trials: state and system attrs.
        self.study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=reports[last][0] if state == TrialState.COMPLETE else None,
                system_attrs=system,
            )
        )


def _unsynced(connection: Any, _: Any) -> None:
    connection.execute("PRAGMA synchronous=OFF")


def _run_trial(study: optuna.Study, reports: Reports, latencies: list[float] | None) -> bool:
    """One trial through the study's pruner; whether it was pruned."""
    trial = study.ask()
    for step, (value, energy, lr) in enumerate(reports):
        report(trial, value, step, energy_per_epoch_j=energy, stable_lr=lr)
        start = time.perf_counter()
        decision = trial.should_prune()
        if latencies is not None:
            latencies.append(time.perf_counter() - start)
        if decision:
            study.tell(trial, state=TrialState.PRUNED)
            return True
    study.tell(trial, reports[-1][0])
    return False


def _measure(base: Path, size: int, timed: Sequence[Reports], warm: Reports) -> None:
    studies = {}
    for i, (name, pruner) in enumerate(_pruners().items()):
        copy = base.with_name(f"{size}-{i}.db")
        shutil.copy(base, copy)
        studies[name] = optuna.load_study(
            study_name="bench", storage=f"sqlite:///{copy}", pruner=pruner
        )
        _run_trial(studies[name], warm, None)
    latencies: dict[str, list[float]] = {name: [] for name in studies}
    pruned = dict.fromkeys(studies, 0)
    for reports in timed:
        for name, study in studies.items():
            pruned[name] += _run_trial(study, reports, latencies[name])
    base_mean = statistics.fmean(latencies[OPTUNA])
    print(f"\n{size} trials in the study ({len(timed)} timed):", flush=True)
    for name, times in latencies.items():
        mean = statistics.fmean(times)
        print(
            f"  {name:42s} calls {len(times):5d}  pruned {pruned[name]:3d}  "
            f"mean {mean * 1e3:8.3f} ms  ratio {mean / base_mean:5.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3000, help="largest study size")
    parser.add_argument("--steps", type=int, default=4, help="steps reported per trial")
    parser.add_argument("--timed", type=int, default=40, help="trials timed at each size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.trials <= args.timed or args.steps < 2 or args.timed < 1:
        parser.error("need --trials > --timed >= 1 and --steps >= 2")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sizes = [s for s in SIZES if args.timed < s < args.trials] + [args.trials]

    rng = random.Random(args.seed)

    def draw() -> Reports:
        return [
            (rng.random(), rng.uniform(50, 500), 10 ** rng.uniform(-3, 0))
            for _ in range(args.steps)
        ]

    print(
        f"should_prune on SQLite, {args.steps} steps per trial, rungs at steps 1, 2, 4, ...; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} "
        f"UTC, optuna {optuna.__version__}",
        flush=True,
    )
    warm = draw()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.db"
        storage = optuna.storages.RDBStorage(f"sqlite:///{base}")
        # Filling only: no sync per commit (the timed copies use SQLite's defaults).
        sqlalchemy.event.listen(storage.engine, "connect", _unsynced)
        storage.engine.dispose()
        study = optuna.create_study(storage=storage, study_name="bench", direction="maximize")
        filler = _Filler(study, args.steps)
        for size in sizes:
            started = time.perf_counter()
            for number in range(len(study.trials), size - args.timed - 1):
                filler.add(number, draw())
            filled = time.perf_counter() - started
            print(f"(filled to {size - args.timed - 1} trials in {filled:.0f} s)", flush=True)
            _measure(base, size, [draw() for _ in range(args.timed)], warm)


if __name__ == "__main__":
    main()
