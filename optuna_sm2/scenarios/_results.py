"""What the benchmark measured: one arm on one seed, an arm over its seeds, and the arms of one
scenario side by side (SM² α=0.75 against each other arm, and the targets it is held to)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StepKind = Literal["explore", "train"]
J_PER_WH = 3600.0

ARMS = ("vanilla", "alpha1", "sm2", "tpe_hyperband", "grid", "zeus_cost")
"""Every arm, in the order the bench runs and shows them."""

ARM_LABELS = {
    "vanilla": "vanilla",
    "alpha1": "SM² α=1",
    "sm2": "SM² α=0.75",
    "tpe_hyperband": "TPE + Hyperband",
    "grid": "grid",
    "zeus_cost": "Zeus cost",
}

METRIC_TOLERANCE = 0.02
"""The targets' tolerance on the final metric: relative to the reference arm's mean."""


def _finite(x: float) -> float | None:
    """``x``, or ``None`` (JSON null) when it is NaN or infinite: unmeasured, never 0."""
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class StepRecord:
    """One reported step of one configuration (a row of the Fig. 2 style plot).

    ``energy_per_epoch_j`` is scaled to one full pass over the training data, as the study
    stores it (an exploration on a quarter of the data counts x4); ``None`` when not measured.
    A thorough epoch (``train``) is one full pass, so its figure is the epoch's energy.
    """

    trial: int
    batch_size: int
    step: int
    kind: StepKind
    value: float
    energy_per_epoch_j: float | None
    lr: float


@dataclass(frozen=True)
class ArmResult:
    """One arm on one seed: the vanilla run, or one search (SM², TPE + Hyperband, grid).

    ``chosen_trial`` is the trial whose configuration the arm ends with (the best completed
    trial; the vanilla run's only one), ``None`` when none completed.
    """

    arm: str
    seed: int
    total_energy_j: float
    final_metric: float
    best_params: dict[str, Any]
    n_trials: int
    wall_s: float
    energy_source: str
    chosen_trial: int | None
    steps: tuple[StepRecord, ...] = field(default=(), repr=False)
    notes: tuple[str, ...] = ()

    @property
    def trials_run(self) -> list[dict[str, int]]:
        """Per configuration: its batch size and the last step it reached (the decisions)."""
        last: dict[int, StepRecord] = {}
        for r in self.steps:
            if r.trial not in last or r.step > last[r.trial].step:
                last[r.trial] = r
        return [
            {"trial": t, "batch_size": last[t].batch_size, "last_step": last[t].step}
            for t in sorted(last)
        ]

    @property
    def total_energy_wh(self) -> float:
        return self.total_energy_j / J_PER_WH

    @property
    def chosen_epochs(self) -> int:
        """Thorough epochs the chosen configuration trained in this arm."""
        return sum(1 for r in self.steps if r.trial == self.chosen_trial and r.kind == "train")

    @property
    def chosen_training_j(self) -> float | None:
        """Energy of the chosen configuration's thorough epochs, as measured in this arm: what
        training it alone for the same epochs costs (no exploration, no evaluation). ``None``
        when no trial completed or one of those epochs could not be measured."""
        energies = [
            r.energy_per_epoch_j
            for r in self.steps
            if r.trial == self.chosen_trial and r.kind == "train"
        ]
        if self.chosen_trial is None or not energies or None in energies:
            return None
        total = math.fsum(e for e in energies if e is not None)
        return total if math.isfinite(total) else None

    @property
    def search_overhead(self) -> float | None:
        """``total_energy_j / chosen_training_j``: what the arm spent per joule of training its
        result; ``None`` when the denominator is unknown."""
        alone = self.chosen_training_j
        if alone is None or alone <= 0 or not math.isfinite(self.total_energy_j):
            return None
        return self.total_energy_j / alone

    def to_json(self) -> dict[str, Any]:
        """One seed of one arm in ``results.json``."""
        return {
            "seed": self.seed,
            "total_energy_j": _finite(self.total_energy_j),
            "total_energy_wh": _finite(self.total_energy_wh),
            "final_metric": _finite(self.final_metric),
            "best_params": self.best_params,
            "chosen_epochs": self.chosen_epochs,
            "chosen_training_j": self.chosen_training_j,
            "search_overhead": self.search_overhead,
            "n_trials": self.n_trials,
            "wall_s": self.wall_s,
            "energy_source": self.energy_source,
            "notes": list(self.notes),
            "trials": self.trials_run,
        }

    def to_stored(self) -> dict[str, Any]:
        """Everything of the run, its steps included, as the resumable bench stores it."""
        return {
            **{k: getattr(self, k) for k in _STORED},
            "total_energy_j": _finite(self.total_energy_j),
            "final_metric": _finite(self.final_metric),
            "steps": [asdict(r) for r in self.steps],
            "notes": list(self.notes),
        }

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> ArmResult:
        """The run :meth:`to_stored` wrote (``null`` reads back as NaN: unmeasured)."""
        return cls(
            **{k: data[k] for k in _STORED},
            total_energy_j=_nan(data["total_energy_j"]),
            final_metric=_nan(data["final_metric"]),
            steps=tuple(StepRecord(**r) for r in data["steps"]),
            notes=tuple(data["notes"]),
        )


_STORED = ("arm", "seed", "best_params", "n_trials", "wall_s", "energy_source", "chosen_trial")


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


@dataclass(frozen=True)
class Spread:
    """One figure over seeds: its values, their mean and their range (NaN: not measured)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        """The mean; NaN when there are no values or one is NaN."""
        return math.fsum(self.values) / len(self.values) if self.values else math.nan

    @property
    def low(self) -> float:
        return min(self.values) if self.values and not self._missing else math.nan

    @property
    def high(self) -> float:
        return max(self.values) if self.values and not self._missing else math.nan

    @property
    def _missing(self) -> bool:
        return any(math.isnan(v) for v in self.values)

    def separated_from(self, other: Spread) -> bool | None:
        """Whether the two ranges do not overlap (every seed of one on the same side of every
        seed of the other): a gap beyond the seed-to-seed spread. ``None`` when either has
        fewer than two seeds or a missing value: the spread is unknown."""
        if min(len(self.values), len(other.values)) < 2 or self._missing or other._missing:
            return None
        return self.high < other.low or other.high < self.low

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": _finite(self.mean),
            "min": _finite(self.low),
            "max": _finite(self.high),
            "per_seed": [_finite(v) for v in self.values],
        }


def _spread(values: list[float | None]) -> Spread:
    return Spread(tuple(_nan(v) for v in values))


@dataclass(frozen=True)
class ArmRuns:
    """One arm over its seeds."""

    arm: str
    runs: tuple[ArmResult, ...]

    @property
    def energy_j(self) -> Spread:
        return _spread([r.total_energy_j for r in self.runs])

    @property
    def metric(self) -> Spread:
        return _spread([r.final_metric for r in self.runs])

    @property
    def overhead(self) -> Spread:
        return _spread([r.search_overhead for r in self.runs])

    def by_seed(self) -> dict[int, ArmResult]:
        return {r.seed: r for r in self.runs}

    def to_json(self) -> dict[str, Any]:
        """``total_energy_j`` and ``final_metric`` are means over the seeds; ``per_seed`` holds
        each seed's run; ``n_trials`` and ``wall_s`` add up the seeds."""
        energy, metric = self.energy_j, self.metric
        return {
            "total_energy_j": _finite(energy.mean),
            "total_energy_wh": _finite(energy.mean / J_PER_WH),
            "final_metric": _finite(metric.mean),
            "search_overhead": _finite(self.overhead.mean),
            "spread": {
                "total_energy_j": energy.to_json(),
                "final_metric": metric.to_json(),
                "search_overhead": self.overhead.to_json(),
            },
            "seeds": [r.seed for r in self.runs],
            "n_trials": sum(r.n_trials for r in self.runs),
            "wall_s": sum(r.wall_s for r in self.runs),
            "per_seed": [r.to_json() for r in self.runs],
        }


@dataclass(frozen=True)
class Comparison:
    """SM² α=0.75 against one other arm, on means over seeds.

    ``energy_ratio`` is E(α=0.75) / E(other); ``metric_gap`` is relative to the other's mean,
    positive when α=0.75 ends worse. ``*_beyond_spread`` say whether the seed ranges of the two
    arms do not overlap (``None``: one seed, the spread is unknown).
    """

    other: str
    energy_ratio: float
    energy_beyond_spread: bool | None
    metric_gap: float
    metric_beyond_spread: bool | None

    def to_json(self) -> dict[str, Any]:
        return {
            "energy_ratio": _finite(self.energy_ratio),
            "energy_beyond_spread": self.energy_beyond_spread,
            "metric_gap": _finite(self.metric_gap),
            "metric_beyond_spread": self.metric_beyond_spread,
        }


@dataclass(frozen=True)
class ScenarioResult:
    """The arms of one scenario and how they compare (a row of the paper's Table 1, and more)."""

    scenario: str
    description: str
    metric_name: str
    direction: str
    arms: Mapping[str, ArmRuns]
    settings: dict[str, Any] = field(default_factory=dict)

    def _paired(self, a: str, b: str) -> list[tuple[ArmResult, ArmResult]]:
        if a not in self.arms or b not in self.arms:
            return []
        other = self.arms[b].by_seed()
        return [(r, other[r.seed]) for r in self.arms[a].runs if r.seed in other]

    @property
    def reduction(self) -> Spread | None:
        """Per seed ``1 - E(sm2) / E(alpha1)``: the energy α=0.75 saves over α=1."""
        pairs = self._paired("sm2", "alpha1")
        if not pairs:
            return None
        return _spread([1.0 - s.total_energy_j / a.total_energy_j for s, a in pairs])

    @property
    def parity(self) -> Spread | None:
        """Per seed ``E(sm2) / E(vanilla)``: the whole search against one ordinary run."""
        pairs = self._paired("sm2", "vanilla")
        if not pairs:
            return None
        return _spread([s.total_energy_j / v.total_energy_j for s, v in pairs])

    def same_decisions(self, seed: int) -> bool | None:
        """Whether α=1 and α=0.75 kept the same configurations to the same steps on ``seed``."""
        pairs = [(s, a) for s, a in self._paired("sm2", "alpha1") if s.seed == seed]
        if not pairs:
            return None
        sm2, alpha1 = (
            sorted((t["batch_size"], t["last_step"]) for t in run.trials_run) for run in pairs[0]
        )
        return sm2 == alpha1

    def metric_gap(self, arm: str, reference: str) -> float:
        """Relative gap of ``arm``'s mean final metric to ``reference``'s, positive when
        ``arm`` is worse; NaN when either is missing."""
        if arm not in self.arms or reference not in self.arms:
            return math.nan
        a, b = self.arms[arm].metric.mean, self.arms[reference].metric.mean
        gap = (b - a) if self.direction == "maximize" else (a - b)
        return gap / abs(b) if b else math.inf

    @property
    def best_arm(self) -> str | None:
        """The arm with the best mean final metric (the first in :data:`ARMS` on a tie)."""
        ranked = [a for a in ARMS if a in self.arms and math.isfinite(self.arms[a].metric.mean)]
        if not ranked:
            return None
        sign = 1.0 if self.direction == "maximize" else -1.0
        return max(ranked, key=lambda a: (sign * self.arms[a].metric.mean, -ARMS.index(a)))

    def compare(self, other: str) -> Comparison | None:
        """SM² α=0.75 against ``other``; ``None`` when either was not run."""
        if "sm2" not in self.arms or other not in self.arms or other == "sm2":
            return None
        sm2, them = self.arms["sm2"], self.arms[other]
        return Comparison(
            other=other,
            energy_ratio=sm2.energy_j.mean / them.energy_j.mean,
            energy_beyond_spread=sm2.energy_j.separated_from(them.energy_j),
            metric_gap=self.metric_gap("sm2", other),
            metric_beyond_spread=sm2.metric.separated_from(them.metric),
        )

    @property
    def comparisons(self) -> dict[str, Comparison]:
        found = {other: self.compare(other) for other in ARMS}
        return {other: c for other, c in found.items() if c is not None}

    @property
    def targets(self) -> dict[str, bool | None]:
        """The issue's targets for α=0.75 on this scenario (``None``: an arm was not run, or an
        energy not measured).

        ``less_energy_than_<arm>``: its mean energy is below the other's; ``metric_within_2pct
        _of_<arm>``: its mean final metric is at most 2% (relative) worse."""
        comparisons = self.comparisons

        def cheaper(other: str) -> bool | None:
            c = comparisons.get(other)
            if c is None or not math.isfinite(c.energy_ratio):
                return None
            return c.energy_ratio < 1.0

        def close(other: str | None) -> bool | None:
            if other is None or other not in self.arms or "sm2" not in self.arms:
                return None
            return self.metric_gap("sm2", other) <= METRIC_TOLERANCE

        return {
            "less_energy_than_tpe_hyperband": cheaper("tpe_hyperband"),
            "less_energy_than_grid": cheaper("grid"),
            "less_energy_than_zeus_cost": cheaper("zeus_cost"),
            "metric_within_2pct_of_best_arm": close(self.best_arm),
            "metric_within_2pct_of_alpha1": close("alpha1"),
        }

    def to_json(self) -> dict[str, Any]:
        reduction, parity = self.reduction, self.parity
        return {
            **{name: runs.to_json() for name, runs in self.arms.items()},
            "reduction": None if reduction is None else _finite(reduction.mean),
            "reduction_spread": None if reduction is None else reduction.to_json(),
            "parity": None if parity is None else _finite(parity.mean),
            "best_arm": self.best_arm,
            "comparisons": {k: c.to_json() for k, c in self.comparisons.items()},
            "targets": self.targets,
            "metric_name": self.metric_name,
            "direction": self.direction,
            "description": self.description,
            "settings": self.settings,
        }
