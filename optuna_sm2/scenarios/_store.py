"""``BenchStore``: what a bench folder holds of finished work, so that a stopped bench goes on.

Layout under the ``--out`` folder:

- ``bench.json``: the budget the folder's runs were made at (a folder holds one budget);
- ``runs/<scenario>/<arm>-seed<N>.json``: one finished arm on one seed
  (:meth:`ArmResult.to_stored`, its steps included), written when it finishes;
- ``tables/<scenario>-seed<N>.json``: the grid's :class:`GridTable`, written after every
  configuration (``"complete": false`` until the last).

Every file is written through a temporary file and renamed: a bench stopped at any moment
leaves whole files only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optuna_sm2.scenarios._results import ArmResult
from optuna_sm2.scenarios._table import GridTable, table_name


def write_json(path: Path, payload: Any) -> None:
    """``payload`` as JSON in ``path`` (through a temporary file; folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
    temporary.replace(path)


class BenchStore:
    """The finished runs and grid tables of one bench folder at one budget.

    Raises:
        ValueError: the folder holds runs of another budget (nothing is written).
    """

    def __init__(self, out_dir: str | Path, budget: str) -> None:
        self.root = Path(out_dir)
        self.budget = budget
        held = self.root / "bench.json"
        if held.is_file():
            stored = json.loads(held.read_text()).get("budget")
            if stored != budget:
                raise ValueError(
                    f"{self.root} holds a bench at budget {stored!r}, not {budget!r}: use "
                    "another --out folder"
                )

    def open(self) -> None:
        """Create the folder and record its budget."""
        write_json(self.root / "bench.json", {"budget": self.budget})

    def _run_path(self, scenario: str, arm: str, seed: int) -> Path:
        return self.root / "runs" / scenario / f"{arm}-seed{seed}.json"

    def table_path(self, scenario: str, seed: int) -> Path:
        return self.root / "tables" / table_name(scenario, seed)

    def run(self, scenario: str, arm: str, seed: int) -> ArmResult | None:
        """The stored run of ``arm`` on ``seed``; ``None`` when it has not finished."""
        path = self._run_path(scenario, arm, seed)
        if not path.is_file():
            return None
        return ArmResult.from_stored(json.loads(path.read_text()))

    def save_run(self, scenario: str, result: ArmResult) -> None:
        write_json(self._run_path(scenario, result.arm, result.seed), result.to_stored())

    def table(self, scenario: str, seed: int) -> GridTable | None:
        """The grid table of ``seed`` as far as it was trained; ``None`` before any."""
        path = self.table_path(scenario, seed)
        return GridTable.load(path) if path.is_file() else None

    def save_table(self, table: GridTable) -> None:
        write_json(self.table_path(table.scenario, table.seed), table.to_json())
