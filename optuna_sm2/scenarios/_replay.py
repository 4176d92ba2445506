"""The replay: rules of the successive-halving family re-run on a grid's measurements.

A :class:`GridTable` holds every configuration's every step: its value, what the objective
reported for the pruner, and the joules of its windows. A rule is replayed on it by the real
pruner in an in-memory Optuna study whose trials report the table's steps: the SM² rules in the
synchronous schedule of :func:`optuna_sm2.optimize_synchronous` (every configuration brought to
a rung, recorded, then all ranked together; the losers pruned), Optuna's own
``SuccessiveHalvingPruner`` as an Optuna user runs it (trials one after another,
``should_prune()`` after every report). The energy of a replayed rule is the table's energy of
what it would have trained (explorations and evaluations included); its final metric is the best
completed trial's. Two rules that decide alike therefore cost exactly alike: a difference in
energy is their decisions' alone, never the meter's noise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from optuna_sm2 import _compat
from optuna_sm2._trial_attrs import ENERGY_PER_EPOCH_SPREAD, TrialWriter
from optuna_sm2.pruners import Ranking, SuccessiveHalvingEnergyPruner, report
from optuna_sm2.scenarios._table import GridTable, TableConfiguration, TableStep

RuleKind = Literal["sm2", "optuna_sha"]


@dataclass(frozen=True)
class Rule:
    """A pruning rule to replay: SM²'s pruner at ``alpha``, ``beta`` and ``ranking``
    (``kind="sm2"``), or Optuna's ``SuccessiveHalvingPruner`` with its defaults
    (``kind="optuna_sha"``; the other fields unused)."""

    name: str
    kind: RuleKind = "sm2"
    alpha: float = 1.0
    beta: float = 0.5
    ranking: Ranking = "robust"

    def to_json(self) -> dict[str, Any]:
        if self.kind == "optuna_sha":
            return {"name": self.name, "kind": self.kind}
        return {
            "name": self.name,
            "kind": self.kind,
            "alpha": self.alpha,
            "beta": self.beta,
            "ranking": self.ranking,
        }


ALPHA1 = Rule("α=1")
RULES = (
    ALPHA1,
    Rule("α=0.9", alpha=0.9),
    Rule("α=0.75", alpha=0.75),
    Rule("α=0.5", alpha=0.5),
    Rule("α=0.75 β=0", alpha=0.75, beta=0.0),
    Rule("α=0.75 β=1", alpha=0.75, beta=1.0),
    Rule("α=0.75 paper", alpha=0.75, ranking="paper"),
    Rule("α=0.5 paper", alpha=0.5, ranking="paper"),
    Rule("Optuna SHA", kind="optuna_sha"),
)
"""The rules of the replayed table: α=1 (Optuna's decisions in SM²'s schedule), α in {0.9,
0.75, 0.5} at β=0.5, β in {0, 1} at α=0.75 (energy only, LR only), the paper's plain ranking,
and Optuna's own pruner. All SM² rules use the robust ranking unless named ``paper``."""

CURVE_ALPHAS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 1.0)
CURVE_BETAS = (0.0, 0.5, 1.0)


def curve_rules() -> list[Rule]:
    """The α, β points of the energy-against-metric curve (robust ranking)."""
    return [Rule(f"α={a:g} β={b:g}", alpha=a, beta=b) for b in CURVE_BETAS for a in CURVE_ALPHAS]


@dataclass(frozen=True)
class Replayed:
    """One rule on one table: the energy of what it trained (NaN: no step of it measured;
    ``unmeasured`` steps left out), its final metric (NaN: none completed), and its decisions
    (per configuration in trial order, its batch size and the last step it reached)."""

    rule: Rule
    scenario: str
    seed: int
    energy_j: float
    unmeasured: int
    final_metric: float
    decisions: tuple[tuple[int, int], ...]
    chosen_batch_size: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "seed": self.seed,
            "energy_j": self.energy_j if math.isfinite(self.energy_j) else None,
            "unmeasured_steps": self.unmeasured,
            "final_metric": self.final_metric if math.isfinite(self.final_metric) else None,
            "decisions": [list(d) for d in self.decisions],
            "chosen_batch_size": self.chosen_batch_size,
        }


class _Replay:
    """One rule on one table: an in-memory study, one trial per configuration."""

    def __init__(self, table: GridTable, pruner: optuna.pruners.BasePruner) -> None:
        self.table = table
        self.study = optuna.create_study(direction=table.direction, pruner=pruner)
        self.trials: dict[int, optuna.trial.Trial] = {}
        self.reached: dict[int, int] = {}
        self.ran_out: set[int] = set()
        """Configurations the rule trained on past their last step (into the diverged epoch)."""

    def start(self, configuration: TableConfiguration) -> optuna.trial.Trial:
        self.study.enqueue_trial({"batch_size": configuration.batch_size})
        trial = self.study.ask()
        trial.suggest_categorical("batch_size", list(self.table.batch_sizes))
        self.trials[configuration.trial] = trial
        self.reached[configuration.trial] = -1
        return trial

    def advance(self, configuration: TableConfiguration, to_step: int | None) -> bool:
        """Report the configuration's steps up to ``to_step`` (``None``: all); whether it
        reached it (a configuration whose loss diverged ends before: it is told PRUNED)."""
        trial = self.trials[configuration.trial]
        for step in configuration.steps:
            if step.step <= self.reached[configuration.trial]:
                continue
            if to_step is not None and step.step > to_step:
                return True
            _report(trial, step)
            self.reached[configuration.trial] = step.step
        if to_step is None and self.reached[configuration.trial] == self.table.last_step:
            return True
        if to_step is not None and self.reached[configuration.trial] >= to_step:
            return True
        self.ran_out.add(configuration.trial)
        self.study.tell(trial, state=TrialState.PRUNED)
        return False

    def result(self, rule: Rule) -> Replayed:
        joules, unmeasured, decisions = 0.0, 0, []
        measured = False
        for c in self.table.configurations:
            last = self.reached.get(c.trial, -1)
            if last < 0:
                continue
            spent, missing = c.joules_to(last, tail=c.trial in self.ran_out)
            joules += spent
            unmeasured += missing
            measured = measured or missing < sum(1 for s in c.steps if s.step <= last)
            decisions.append((c.batch_size, last))
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = self.study.best_trial if complete else None
        return Replayed(
            rule=rule,
            scenario=self.table.scenario,
            seed=self.table.seed,
            energy_j=joules if measured else math.nan,
            unmeasured=unmeasured,
            final_metric=math.nan if best is None or best.value is None else float(best.value),
            decisions=tuple(decisions),
            chosen_batch_size=None if best is None else int(best.params["batch_size"]),
        )


def _report(trial: optuna.trial.Trial, step: TableStep) -> None:
    """Report ``step`` as the objective did: its value, energy per epoch, spread and LR."""
    TrialWriter(trial).write(ENERGY_PER_EPOCH_SPREAD, step.energy_per_epoch_spread)
    report(
        trial, step.value, step.step, energy_per_epoch_j=step.energy_per_epoch_j, stable_lr=step.lr
    )


def replay(table: GridTable, rule: Rule) -> Replayed:
    """``rule`` re-run on ``table`` (see the module's docstring).

    Raises:
        ValueError: the table is not complete.
    """
    if not table.complete:
        raise ValueError(
            f"the grid table of {table.scenario} seed {table.seed} is not complete "
            f"({len(table.configurations)} of {len(table.batch_sizes)} configurations)"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if rule.kind == "optuna_sha":
            return _one_after_another(table, rule)
        return _synchronous(table, rule)


def _synchronous(table: GridTable, rule: Rule) -> Replayed:
    """SM²'s pruner in ``optimize_synchronous``'s schedule: at each rung every configuration
    still running reports up to the rung's step and is recorded, then all are ranked together
    and the losers pruned; the survivors of the last rung train to the end."""
    pruner = SuccessiveHalvingEnergyPruner(
        alpha=rule.alpha, beta=rule.beta, ranking=rule.ranking, rung_steps=table.rung_steps
    )
    run = _Replay(table, pruner)
    live = list(table.configurations)
    for c in live:
        run.start(c)
    for rung, step in enumerate(table.rung_steps):
        live = [c for c in live if run.advance(c, step)]
        for c in live:
            pruner.record_rung(run.study, _compat.frozen(run.trials[c.trial]))
        promoted = {
            c.trial: pruner.is_promoted(run.study, _compat.frozen(run.trials[c.trial]), rung)
            for c in live
        }
        for c in live:
            if not promoted[c.trial]:
                run.study.tell(run.trials[c.trial], state=TrialState.PRUNED)
        live = [c for c in live if promoted[c.trial]]
    for c in live:
        if run.advance(c, None):
            run.study.tell(run.trials[c.trial], c.steps[-1].value)
    return run.result(rule)


def _one_after_another(table: GridTable, rule: Rule) -> Replayed:
    """Optuna's ``SuccessiveHalvingPruner()`` (its defaults) as an Optuna user runs it: one
    trial after another, ``should_prune()`` after every report."""
    run = _Replay(table, optuna.pruners.SuccessiveHalvingPruner())
    for c in table.configurations:
        trial = run.start(c)
        pruned = False
        for step in c.steps:
            if not run.advance(c, step.step):
                pruned = True
                break
            if trial.should_prune():
                run.study.tell(trial, state=TrialState.PRUNED)
                pruned = True
                break
        if not pruned and run.advance(c, None):
            run.study.tell(trial, c.steps[-1].value)
    return run.result(rule)


def replay_all(tables: Sequence[GridTable], rules: Sequence[Rule]) -> list[Replayed]:
    """Every rule on every table."""
    return [replay(table, rule) for table in tables for rule in rules]
