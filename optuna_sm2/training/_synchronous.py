"""``optimize_synchronous``: the paper's synchronous successive halving over Optuna trials."""

from __future__ import annotations

import logging

import optuna
from optuna.trial import TrialState

from optuna_sm2 import _compat
from optuna_sm2.pruners._successive_halving_energy import SuccessiveHalvingEnergyPruner
from optuna_sm2.training._driver import StepDriver
from optuna_sm2.training._objective import SM2Objective
from optuna_sm2.training._phases import MetricError

_logger = logging.getLogger(__name__)


def optimize_synchronous(
    study: optuna.Study,
    objective: SM2Objective,
    n_trials: int | None = None,
    *,
    enqueue_batch_sizes: bool = True,
) -> None:
    """Run ``n_trials`` configurations in lock-step, ranking all of them at every rung.

    This is the schedule of SM² (Geißler et al., arXiv 2412.08526): every configuration runs
    its first block (exploration and thorough epochs), all are ranked together by the
    study's :class:`SuccessiveHalvingEnergyPruner`, the worse half is pruned, the rest run
    their next block, and so on until one configuration trains to the end. Trials run one
    after another on the device; the others wait in memory.

    Example:
        .. code-block:: python

            study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
            optimize_synchronous(study, objective)  # 8 batch sizes: 8 -> 4 -> 2 -> 1

    Args:
        study: A single-objective study whose pruner is ``objective.make_pruner(...)``.
        objective: The :class:`SM2Objective` to run.
        n_trials: Configurations to compare; the number of batch sizes by default.
        enqueue_batch_sizes: Enqueue each batch size once (as many as ``n_trials`` allows)
            so that every one is compared, as in the paper; further trials are sampled.

    A trial that raises is marked FAIL (the error is logged) and the others go on, except for a
    metric that does not return a finite number: then every trial still running is marked FAIL
    and the ``ValueError`` naming ``metric`` is raised, since every trial would fail the same way.
    """
    pruner = study.pruner
    if not (
        isinstance(pruner, SuccessiveHalvingEnergyPruner)
        and pruner.rung_steps == tuple(objective.rung_steps)
    ):
        raise ValueError(
            "optimize_synchronous needs the study's pruner to be the objective's: "
            "optuna.create_study(..., pruner=objective.make_pruner(alpha, beta))."
        )
    n = len(objective.batch_sizes) if n_trials is None else n_trials
    if n < 1:
        raise ValueError(f"`n_trials` must be >= 1, got {n_trials}.")
    if enqueue_batch_sizes:
        for batch_size in objective.batch_sizes[:n]:
            study.enqueue_trial({"batch_size": batch_size})

    trials = [study.ask() for _ in range(n)]
    alive = {t.number: (t, StepDriver(objective.run(t))) for t in trials}
    while alive:
        at_rung: dict[int, int] = {}
        for number, (trial, driver) in list(alive.items()):
            try:
                rung = _run_to_next_rung(study, trial, driver)
            except MetricError:
                del alive[number]
                for other, other_driver in alive.values():
                    other_driver.close()
                    study.tell(other, state=TrialState.FAIL)
                raise
            if rung is None:
                del alive[number]
            else:
                pruner.record_rung(study, _compat.frozen(trial))
                at_rung[number] = rung
        for number, rung in at_rung.items():
            trial, driver = alive[number]
            if not pruner.is_promoted(study, _compat.frozen(trial), rung):
                driver.close()
                study.tell(trial, state=TrialState.PRUNED)
                del alive[number]
                _logger.info("trial %d pruned at rung %d (synchronous halving)", number, rung)


def _run_to_next_rung(
    study: optuna.Study, trial: optuna.trial.Trial, driver: StepDriver
) -> int | None:
    """Advance the trial to its next rung and return it; ``None`` once the trial is told.

    A trial that raises is told FAIL; a misused metric (:class:`MetricError`) is raised again,
    since every other trial would fail the same way.
    """
    try:
        paused = driver.advance(lambda result: result.rung is not None)
    except optuna.TrialPruned as pruned:
        _logger.info("trial %d pruned: %s", trial.number, pruned)
        study.tell(trial, state=TrialState.PRUNED)
        return None
    except MetricError:
        study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception:
        _logger.exception("trial %d failed", trial.number)
        study.tell(trial, state=TrialState.FAIL)
        return None
    if paused is None:
        assert driver.value is not None
        study.tell(trial, driver.value)
        return None
    return paused.rung
