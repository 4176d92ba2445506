"""What one benchmark arm measured, and the three arms of one scenario side by side."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

StepKind = Literal["explore", "train"]
J_PER_WH = 3600.0


def _finite(x: float) -> float | None:
    """``x``, or ``None`` (JSON null) when it is NaN or infinite: unmeasured, never 0."""
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class StepRecord:
    """One reported step of one configuration (a row of the Fig. 2 style plot).

    ``energy_per_epoch_j`` is scaled to one full pass over the training data, as the study
    stores it (an exploration on a quarter of the data counts x4); ``None`` when not measured.
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
    """One arm: the vanilla run or one SM² study (``alpha1`` or ``sm2``)."""

    arm: str
    total_energy_j: float
    """Joules of every measured window; NaN when none could be measured (see ``notes``)."""
    final_metric: float
    best_params: dict[str, Any]
    n_trials: int
    wall_s: float
    energy_source: str
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

    def to_json(self) -> dict[str, Any]:
        """The ``M`` of ``results.json``: energy, metric, best parameters, trials, wall time."""
        return {
            "total_energy_j": _finite(self.total_energy_j),
            "total_energy_wh": _finite(self.total_energy_wh),
            "final_metric": _finite(self.final_metric),
            "best_params": self.best_params,
            "n_trials": self.n_trials,
            "wall_s": self.wall_s,
            "energy_source": self.energy_source,
            "notes": list(self.notes),
            "trials": self.trials_run,
        }


@dataclass(frozen=True)
class ScenarioResult:
    """The three arms of one scenario, and how they compare (the paper's Table 1 row)."""

    scenario: str
    description: str
    metric_name: str
    direction: str
    vanilla: ArmResult
    alpha1: ArmResult
    sm2: ArmResult
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def reduction(self) -> float:
        """``1 - E(sm2) / E(alpha1)``: the energy SM² with α=0.75 saves over α=1."""
        return 1.0 - self.sm2.total_energy_j / self.alpha1.total_energy_j

    @property
    def parity(self) -> float:
        """``E(sm2) / E(vanilla)``: the whole search against one ordinary training run."""
        return self.sm2.total_energy_j / self.vanilla.total_energy_j

    @property
    def same_decisions(self) -> bool:
        """Whether α=1 and α=0.75 kept the same configurations to the same steps."""
        strip = [
            [(t["batch_size"], t["last_step"]) for t in arm.trials_run]
            for arm in (self.alpha1, self.sm2)
        ]
        return sorted(strip[0]) == sorted(strip[1])

    @property
    def metric_gap(self) -> float:
        """Relative gap of the sm2 arm's final metric to alpha1's, positive when sm2 is worse."""
        a, b = self.alpha1.final_metric, self.sm2.final_metric
        gap = (a - b) if self.direction == "maximize" else (b - a)
        return gap / abs(a) if a else math.inf

    def to_json(self) -> dict[str, Any]:
        return {
            "vanilla": self.vanilla.to_json(),
            "alpha1": self.alpha1.to_json(),
            "sm2": self.sm2.to_json(),
            "reduction": self.reduction,
            "parity": self.parity,
            "metric_name": self.metric_name,
            "direction": self.direction,
            "metric_gap": self.metric_gap,
            "same_decisions": self.same_decisions,
            "description": self.description,
            "settings": self.settings,
        }
