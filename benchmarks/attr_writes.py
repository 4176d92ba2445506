"""User-attribute writes of an ``SM2Objective`` study, per training epoch, on a SQLite file.

Runs ``--trials`` trials of the tests' tiny objective (``tests/support/tiny.py``, 2 epochs per
rung, 2 final epochs, a simulated meter) on a fresh SQLite file, counting every
``set_trial_user_attr`` call the storage receives and those that wrote the value the database
already held. Prints the calls per training epoch and per key. Which trials are pruned depends on
the measured energies (wall time on the simulated meter), so the epochs vary from run to run;
compare the rate per training epoch.

    python benchmarks/attr_writes.py [--trials 4]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.tiny import tiny_objective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    calls: Counter[str] = Counter()
    unchanged: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as directory:
        storage = RDBStorage(f"sqlite:///{Path(directory) / 'writes.db'}")
        write = storage.set_trial_user_attr

        def counted(trial_id: int, key: str, value: Any) -> None:
            calls[key] += 1
            held = storage.get_trial(trial_id).user_attrs
            if key in held and held[key] == value:
                unchanged[key] += 1
            write(trial_id, key, value)

        storage.set_trial_user_attr = counted  # type: ignore[method-assign]
        objective = tiny_objective(epochs_per_rung=2, final_epochs=2)
        study = optuna.create_study(
            storage=storage, direction="maximize", pruner=objective.make_pruner()
        )
        study.optimize(objective, n_trials=args.trials)
        epochs = sum(t.user_attrs.get("sm2.epochs_trained", 0) for t in study.trials)
        explorations = sum(t.user_attrs.get("sm2.explorations", 0) for t in study.trials)
    total = sum(calls.values())
    print(f"{date.today()}  {platform.node()}  python {platform.python_version()}")
    print(f"trials {args.trials}  training epochs {epochs}  explorations {explorations}")
    print(
        f"set_trial_user_attr calls {total} ({total / max(epochs, 1):.1f} per training epoch), "
        f"writing an unchanged value {sum(unchanged.values())}"
    )
    for key in sorted(calls):
        print(f"  {key}: {calls[key]} (unchanged {unchanged[key]})")


if __name__ == "__main__":
    main()
