"""``GridTable``: what the grid arm measured on one scenario and seed, for replaying rules on it.

The grid trains every configuration through the whole SM² schedule. Its table holds, per
configuration and step, what the objective reported (the value, the energy per epoch and its
spread, the stable LR) and the joules of every window of the step (the exploration or the
thorough epoch, and the evaluation), with the meter's source and resolution. Any rule of the
successive-halving family can then be re-run on the same measurements
(:mod:`optuna_sm2.scenarios._replay`): identical decisions cost identical energy.

A table is a small JSON file (``<scenario>-seed<N>.json``, :func:`table_name`); a table whose
``complete`` is false holds the configurations trained so far (the bench resumes it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna

from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2.scenarios._base import Direction
from optuna_sm2.scenarios._results import StepKind, StepRecord
from optuna_sm2.training import PhaseResult

FORMAT = "optuna-sm2 grid table"
VERSION = 1


def table_name(scenario: str, seed: int) -> str:
    """The file name of a scenario's table for ``seed``."""
    return f"{scenario}-seed{seed}.json"


@dataclass(frozen=True)
class TableStep:
    """One reported step of one configuration, with the joules of its windows.

    ``work_j`` is the exploration's or the thorough epoch's window, ``eval_j`` the evaluation's
    (``None``: not measured). ``energy_per_epoch_j``, ``energy_per_epoch_spread`` and ``lr`` are
    what the objective reported at the step (what the pruner ranks at a rung).
    """

    step: int
    kind: StepKind
    value: float
    energy_per_epoch_j: float | None
    energy_per_epoch_spread: float | None
    lr: float
    work_j: float | None
    eval_j: float | None
    seconds: float
    invalid_windows: int = 0

    @property
    def energy_j(self) -> float | None:
        """The step's joules (its work and its evaluation); ``None`` when either is unknown."""
        if self.work_j is None or self.eval_j is None:
            return None
        return self.work_j + self.eval_j


@dataclass(frozen=True)
class TableConfiguration:
    """One configuration (batch size) of the grid: its steps, in order, as far as it trained
    (a configuration whose loss diverged stops early, with a note). ``tail_j`` is what it spent
    after its last reported step: the epoch in which its loss diverged (0 J otherwise)."""

    trial: int
    batch_size: int
    steps: tuple[TableStep, ...]
    notes: tuple[str, ...] = ()
    tail_j: float = 0.0

    def joules_to(self, last_step: int, *, tail: bool) -> tuple[float, int]:
        """The joules of its steps up to ``last_step`` (and its :attr:`tail_j` with ``tail``:
        when it was trained on past its last step, into the epoch that diverged), and how many of
        those steps were not measured."""
        joules, unmeasured = sum_joules([s for s in self.steps if s.step <= last_step])
        return joules + (self.tail_j if tail else 0.0), unmeasured

    @property
    def seconds(self) -> float:
        return math.fsum(s.seconds for s in self.steps)

    def records(self) -> list[StepRecord]:
        """Its steps as the bench's :class:`StepRecord` rows."""
        return [
            StepRecord(
                self.trial, self.batch_size, s.step, s.kind, s.value, s.energy_per_epoch_j, s.lr
            )
            for s in self.steps
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "batch_size": self.batch_size,
            "notes": list(self.notes),
            "tail_j": self.tail_j,
            "steps": [asdict(s) for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableConfiguration:
        return cls(
            trial=int(data["trial"]),
            batch_size=int(data["batch_size"]),
            steps=tuple(TableStep(**s) for s in data["steps"]),
            notes=tuple(data.get("notes", ())),
            tail_j=float(data.get("tail_j", 0.0)),
        )


@dataclass(frozen=True)
class GridTable:
    """Every configuration of one scenario and seed trained through the whole schedule.

    ``phases`` are the kinds of the schedule's steps (``explore``/``train``), ``rung_steps``
    where the SM² pruner decides. ``energy_source`` and ``energy_is_estimate`` are the meter's;
    ``resolution`` how its reading advanced when polled before the run (``period_s``: seconds
    between changes, ``step_j``: joules of one change; ``None`` when it advanced too rarely to
    tell), so that a ranking can tell energies apart only above it.
    """

    scenario: str
    seed: int
    budget: str
    metric_name: str
    direction: Direction
    batch_sizes: tuple[int, ...]
    phases: tuple[StepKind, ...]
    rung_steps: tuple[int, ...]
    energy_source: str
    energy_is_estimate: bool
    resolution: dict[str, float] | None
    meta: dict[str, Any] = field(default_factory=dict)
    configurations: tuple[TableConfiguration, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every batch size has been trained (as far as it went)."""
        return len(self.configurations) == len(self.batch_sizes)

    @property
    def last_step(self) -> int:
        return len(self.phases) - 1

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    def with_configuration(self, configuration: TableConfiguration) -> GridTable:
        return replace(self, configurations=(*self.configurations, configuration))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "scenario": self.scenario,
            "seed": self.seed,
            "budget": self.budget,
            "metric_name": self.metric_name,
            "direction": self.direction,
            "batch_sizes": list(self.batch_sizes),
            "phases": list(self.phases),
            "rung_steps": list(self.rung_steps),
            "energy_source": self.energy_source,
            "energy_is_estimate": self.energy_is_estimate,
            "resolution": self.resolution,
            "complete": self.complete,
            "meta": self.meta,
            "configurations": [c.to_json() for c in self.configurations],
        }

    @classmethod
    def from_json(cls, data: Any) -> GridTable:
        """The table stored as ``data``.

        Raises:
            ValueError: ``data`` is not a grid table of this version.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} (no 'format': {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"{FORMAT} version {data.get('version')!r}; this reads {VERSION}")
        try:
            return cls(
                scenario=str(data["scenario"]),
                seed=int(data["seed"]),
                budget=str(data["budget"]),
                metric_name=str(data["metric_name"]),
                direction=_direction(data["direction"]),
                batch_sizes=tuple(int(b) for b in data["batch_sizes"]),
                phases=tuple(data["phases"]),
                rung_steps=tuple(int(s) for s in data["rung_steps"]),
                energy_source=str(data["energy_source"]),
                energy_is_estimate=bool(data["energy_is_estimate"]),
                resolution=data.get("resolution"),
                meta=dict(data.get("meta") or {}),
                configurations=tuple(
                    TableConfiguration.from_json(c) for c in data["configurations"]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed {FORMAT}: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> GridTable:
        """The table in ``path``.

        Raises:
            ValueError: the file is not a grid table (the message names it).
        """
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc


def _direction(value: Any) -> Direction:
    if value not in ("maximize", "minimize"):
        raise ValueError(f"direction {value!r} is neither 'maximize' nor 'minimize'")
    return "maximize" if value == "maximize" else "minimize"


def load_tables(folder: str | Path) -> list[GridTable]:
    """Every complete grid table under ``folder`` (searched recursively, sorted by scenario and
    seed); files that are not grid tables are skipped.

    Raises:
        ValueError: ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{folder} is not a folder")
    tables = []
    for path in sorted(root.rglob("*.json")):
        try:
            table = GridTable.load(path)
        except ValueError:
            continue
        if table.complete:
            tables.append(table)
    return sorted(tables, key=lambda t: (t.scenario, t.seed))


class TableRecorder:
    """A phase callback of :class:`optuna_sm2.SM2Objective` that keeps every step of one
    configuration as a :class:`TableStep`, its windows' joules read from the trial's energy book
    (the part totals the objective's :class:`~optuna_sm2.TrialEnergy` stores after every
    window)."""

    def __init__(self) -> None:
        self.steps: list[TableStep] = []
        self._parts: dict[str, float] = dict.fromkeys(trial_attrs.ENERGY_PARTS_J, 0.0)
        self._invalid = 0

    def __call__(self, trial: optuna.trial.Trial, result: PhaseResult) -> None:
        held = trial.user_attrs
        spent = {
            part: self._spent(part, attr.read(held))
            for part, attr in trial_attrs.ENERGY_PARTS_J.items()
        }
        invalid = trial_attrs.ENERGY_INVALID_WINDOWS.read(held) or 0
        self.steps.append(
            TableStep(
                step=result.step,
                kind=result.kind,
                value=result.value,
                energy_per_epoch_j=result.energy_per_epoch_j,
                energy_per_epoch_spread=result.energy_per_epoch_spread,
                lr=result.lr,
                work_j=spent[result.kind],
                eval_j=spent["eval"],
                seconds=result.seconds,
                invalid_windows=invalid - self._invalid,
            )
        )
        self._invalid = invalid

    def _spent(self, part: str, total: float | None) -> float | None:
        """Joules booked under ``part`` since the previous step; ``None`` when none was."""
        now = 0.0 if total is None else total
        spent, self._parts[part] = now - self._parts[part], now
        return spent if spent > 0.0 else None


def sum_joules(steps: Sequence[TableStep]) -> tuple[float, int]:
    """The joules of ``steps``' measured steps, and how many steps were not measured."""
    known = [s.energy_j for s in steps if s.energy_j is not None]
    return math.fsum(known), len(steps) - len(known)
