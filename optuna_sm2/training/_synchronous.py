"""``optimize_synchronous``: the paper's synchronous successive halving over Optuna trials.

The schedule lives in the study, so that a run that was interrupted (Ctrl-C, SIGKILL, a crash)
is finished by calling ``optimize_synchronous`` again: the run holds the study's lease
(:mod:`optuna_sm2.training._run_lease`); the rungs whose every decision was told are stored
(``sm2:synchronous_decided``); a RUNNING trial of a dead run is settled by what it had reached
(see :func:`optimize_synchronous`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_sm2 import _compat
from optuna_sm2 import _validation as _check
from optuna_sm2 import attrs as _attrs
from optuna_sm2.pruners import SuccessiveHalvingEnergyPruner
from optuna_sm2.training._configurations import (
    Configuration,
    configuration_number,
    read_configurations,
)
from optuna_sm2.training._driver import StepDriver
from optuna_sm2.training._loop import PhaseResult
from optuna_sm2.training._objective import SM2Objective
from optuna_sm2.training._phases import MetricError
from optuna_sm2.training._run_lease import StudyLease, stored_lease

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

    **Resuming.** Called again on a study whose run was interrupted (Ctrl-C, SIGKILL, a crash,
    here or on another machine), it finishes the schedule where it stopped: rungs decided stay
    decided (pruned configurations stay pruned, the survivors go on); a trial the dead run left
    RUNNING at an undecided rung is decided with its record there (pruned, or retried from its
    checkpoint to go on); one left between rungs is failed and retried from its last checkpoint
    (``SM2Objective(checkpoint_dir=...)``; without one, its retry trains again from the start
    without reporting again what it inherited). A finished study is left as it is. One run
    holds a study at a time: the run's lease in the study tells a live run from a dead one
    (``docs/reliability.md``); a study whose lease is live is refused.

    Example:
        .. code-block:: python

            study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
            optimize_synchronous(study, objective)  # 8 batch sizes: 8 -> 4 -> 2 -> 1

    Args:
        study: A single-objective study whose pruner is ``objective.make_pruner(...)``.
        objective: The :class:`SM2Objective` to run.
        n_trials: Configurations the study compares, an integer from 1 to the number of batch
            sizes (the default): each configuration is one batch size, and more would train a
            batch size twice. It counts the study's configurations (a trial and its retries are
            one), so a resumed run adds only those missing, and none once a rung was decided.
        enqueue_batch_sizes: Enqueue each batch size the study does not hold yet (as many as
            ``n_trials`` allows) so that every one is compared, as in the paper; further
            configurations are sampled.

    A trial that raises is marked FAIL (the error is logged) and the others go on, except for a
    metric that does not return a finite number: then every trial this run is running is marked
    FAIL and the ``ValueError`` naming ``metric`` is raised, since every trial would fail the
    same way.

    Raises:
        ValueError: A bad argument (named); an objective whose schedule is not the study's; a
            study whose lease another run holds; a study holding RUNNING trials that no
            synchronous run started (a worker's, or ones of a version without leases); more
            configurations asked for than a study that has decided a rung holds.
    """
    pruner = _check_arguments(study, objective, n_trials, enqueue_batch_sizes)
    n = len(objective.batch_sizes) if n_trials is None else int(n_trials)
    run = _SynchronousRun(study, objective, pruner)
    run.check_study(n)
    with StudyLease(study) as lease:
        run.lease = lease
        run.run(n, enqueue_batch_sizes)


def _check_arguments(
    study: object, objective: object, n_trials: object, enqueue_batch_sizes: object
) -> SuccessiveHalvingEnergyPruner:
    if not isinstance(study, optuna.Study):
        raise ValueError(f"`study` must be an optuna.Study, got {study!r}.")
    if not isinstance(objective, SM2Objective):
        raise ValueError(f"`objective` must be an optuna_sm2.SM2Objective, got {objective!r}.")
    if n_trials is not None:
        _check.check_int("n_trials", n_trials, minimum=1)
    if not isinstance(enqueue_batch_sizes, bool):
        raise ValueError(
            f"`enqueue_batch_sizes` must be True or False, got {enqueue_batch_sizes!r}."
        )
    pruner = study.pruner
    if not (
        isinstance(pruner, SuccessiveHalvingEnergyPruner)
        and pruner.rung_steps == tuple(objective.rung_steps)
    ):
        raise ValueError(
            "`study` needs the objective's pruner to run synchronously: "
            "optuna.create_study(..., pruner=objective.make_pruner(alpha, beta))."
        )
    if len(study.directions) != 1:
        raise ValueError(
            f"`study` must have one objective, got {len(study.directions)} directions."
        )
    return pruner


class _SynchronousRun:
    """One call of :func:`optimize_synchronous`: the study's configurations taken to the end."""

    def __init__(
        self,
        study: optuna.Study,
        objective: SM2Objective,
        pruner: SuccessiveHalvingEnergyPruner,
    ) -> None:
        self.study = study
        self.objective = objective
        self.pruner = pruner
        self.lease: StudyLease | None = None
        self.rung_steps = objective.rung_steps
        self.live: dict[int, tuple[optuna.trial.Trial, StepDriver]] = {}
        """The trials this run is running, by configuration number."""
        self.to_sample = 0
        """Configurations still to be sampled (asked without a queued trial)."""

    # -- before the lease: checks that write nothing ------------------------------------------

    def check_study(self, n: int) -> None:
        """Refuse a study this run must not take over, before anything is written."""
        stored = self.study.user_attrs.get(_attrs.SCHEDULE)
        ours = self.objective.schedule_attr()
        if stored is not None and stored != ours:
            differ = sorted(k for k in {*ours, *stored} if ours.get(k) != stored.get(k))
            raise ValueError(
                f"`objective` has another schedule than study {self.study.study_name!r} "
                f"({_attrs.SCHEDULE} differs in {', '.join(differ)}): its trials cannot go on "
                "with it; use the objective the study was run with, or a new study"
            )
        configurations = read_configurations(self.study)
        running = [
            t.number
            for c in configurations.values()
            for t in c.trials
            if t.state == TrialState.RUNNING
        ]
        if running and stored_lease(self.study) is None:
            raise ValueError(
                f"`study` {self.study.study_name!r} holds RUNNING trials {running} that no "
                "synchronous run started (a worker's, or left by an optuna-sm2 without leases): "
                "optimize_synchronous cannot tell whether they are alive; use a new study"
            )
        missing = n - len(configurations)
        decided = self.decided()
        if missing > 0 and decided >= 0:
            raise ValueError(
                f"`n_trials` {n} asks for {missing} configurations more than study "
                f"{self.study.study_name!r} holds ({len(configurations)}), but its synchronous "
                f"schedule has decided rung {decided} already: a configuration cannot join "
                "later; use a new study"
            )
        sizes = len(self.objective.batch_sizes)
        if n > sizes:
            raise ValueError(
                f"`n_trials` must be an integer in [1, {sizes}], got {n}: optimize_synchronous "
                f"compares the objective's {sizes} batch sizes, one configuration each (more "
                "would train a batch size twice)"
            )

    def decided(self) -> int:
        """The last rung whose every decision is told (-1: none)."""
        stored = _compat.study_system_attrs(self.study).get(_attrs.SYNCHRONOUS_DECIDED)
        if stored is None:
            return -1
        if not _check.is_int(stored) or not -1 <= stored < len(self.rung_steps):
            warnings.warn(
                f"study {self.study.study_name!r} holds a malformed {_attrs.SYNCHRONOUS_DECIDED} "
                f"({stored!r}); every rung is decided again",
                stacklevel=2,
            )
            return -1
        return int(stored)

    # -- the run ------------------------------------------------------------------------------

    def run(self, n: int, enqueue: bool) -> None:
        configurations = read_configurations(self.study)
        decided = self.decided()
        if configurations:
            unfinished = sum(not c.finished for c in configurations.values())
            _logger.info(
                "study %r holds %d configurations, %d unfinished, rungs decided: %s; resuming",
                self.study.study_name,
                len(configurations),
                unfinished,
                "none" if decided < 0 else f"0 to {decided}",
            )
        self._admit(configurations, n, enqueue)
        for rung in range(decided + 1, len(self.rung_steps)):
            self._reach(rung)
            if not self._decide(rung):
                return
        self._finish()

    def _admit(self, configurations: dict[int, Configuration], n: int, enqueue: bool) -> None:
        """Enqueue the batch sizes the study lacks and count the configurations to sample."""
        missing = n - len(configurations)
        if missing <= 0:
            return
        present = {c.batch_size for c in configurations.values()}
        queued = [b for b in self.objective.batch_sizes if b not in present] if enqueue else []
        for batch_size in queued[:missing]:
            self.study.enqueue_trial({"batch_size": batch_size})
        self.to_sample = missing - len(queued[:missing])

    def _reach(self, rung: int) -> None:
        """Bring every unfinished configuration to ``rung``: its record there, or an end."""
        step = self.rung_steps[rung]
        for configuration in self._unfinished():
            if configuration.number in self.live:
                continue
            current = configuration.current
            if current.state != TrialState.RUNNING:
                continue  # WAITING: asked below
            if configuration.holder(rung) is None and _reached(current, step):
                # The dead run reported the rung's step but did not record it.
                self.pruner.record_rung(self.study, current)
            elif configuration.holder(rung) is None:
                self._retry(current, "between rungs")
        self._ask_queued()
        for configuration in self._unfinished():
            if configuration.number in self.live and configuration.holder(rung) is None:
                self._advance(configuration.number, _to_rung(rung))

    def _decide(self, rung: int) -> bool:
        """Rank every unfinished configuration at ``rung`` and tell the losers PRUNED; whether
        any configuration goes on."""
        unfinished = self._unfinished()
        promoted = {}
        for configuration in unfinished:
            holder = configuration.holder(rung)
            promoted[configuration.number] = holder is not None and self.pruner.is_promoted(
                self.study, holder, rung
            )
        for configuration in unfinished:
            if not promoted[configuration.number]:
                number = self._prune(configuration)
                _logger.info("trial %d pruned at rung %d (synchronous halving)", number, rung)
        _compat.set_study_system_attr(self.study, _attrs.SYNCHRONOUS_DECIDED, rung)
        for configuration in unfinished:
            current = configuration.current
            if (
                promoted[configuration.number]
                and configuration.number not in self.live
                and current.state == TrialState.RUNNING
            ):
                self._retry(current, f"promoted at rung {rung}")
        return any(promoted.values())

    def _finish(self) -> None:
        """Train every configuration left to its end."""
        for configuration in self._unfinished():
            current = configuration.current
            if configuration.number not in self.live and current.state == TrialState.RUNNING:
                self._retry(current, "in its final epochs")
        self._ask_queued()
        for number in list(self.live):
            self._advance(number, _to_end)

    # -- trials -------------------------------------------------------------------------------

    def _unfinished(self) -> list[Configuration]:
        """The study's unfinished configurations, read now; RUNNING trials a dead run left
        behind a queued retry are failed on the way."""
        unfinished = []
        live = {trial.number for trial, _ in self.live.values()}
        for configuration in read_configurations(self.study).values():
            for trial in configuration.stale():
                if trial.number not in live:
                    self._storage_state(trial, TrialState.FAIL)
            if not configuration.finished:
                unfinished.append(configuration)
        return unfinished

    def _ask_queued(self) -> None:
        """Ask every queued trial (and those to sample), and start running each."""
        queued = len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        for _ in range(queued + self.to_sample):
            with warnings.catch_warnings():
                # A storage with a heartbeat warns that it is meant for study.optimize: this
                # run's lease stands in for the heartbeat.
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = self.study.ask()
            number = configuration_number(_compat.frozen(trial))
            self.live[number] = (trial, StepDriver(self.objective.run(trial)))
        self.to_sample = 0

    def _advance(self, number: int, pause: Callable[[PhaseResult], bool]) -> None:
        """Run configuration ``number``'s live trial until ``pause``, then record its rung; or to
        its end, telling its state. A misused metric fails every live trial and is raised."""
        trial, driver = self.live[number]
        try:
            paused = driver.advance(pause)
        except optuna.TrialPruned as pruned:
            _logger.info("trial %d pruned: %s", trial.number, pruned)
            self._tell(number, TrialState.PRUNED)
            return
        except MetricError:
            self._tell(number, TrialState.FAIL)
            for other in list(self.live):
                self._tell(other, TrialState.FAIL)
            raise
        except Exception:
            _logger.exception("trial %d failed", trial.number)
            self._tell(number, TrialState.FAIL)
            return
        assert self.lease is not None
        self.lease.check()
        if paused is None:
            assert driver.value is not None
            self._tell(number, TrialState.COMPLETE, driver.value)
            return
        self.pruner.record_rung(self.study, _compat.frozen(trial))

    def _tell(self, number: int, state: TrialState, value: float | None = None) -> None:
        trial, driver = self.live.pop(number)
        driver.close()
        self.study.tell(trial, value, state=state)

    def _prune(self, configuration: Configuration) -> int:
        """Tell the configuration's trial PRUNED (this run's, or one a dead run left RUNNING at
        its record); the number of the trial told."""
        if configuration.number in self.live:
            trial = self.live[configuration.number][0]
            self._tell(configuration.number, TrialState.PRUNED)
            return trial.number
        current = configuration.current
        self.study.tell(current.number, state=TrialState.PRUNED)
        return current.number

    def _retry(self, trial: FrozenTrial, where: str) -> None:
        """Queue a retry of a trial a dead run left RUNNING, then fail it (in this order, so that
        a run killed in between leaves the retry, and the trial is failed next time)."""
        _compat.queue_retry(self.study, trial)
        self._storage_state(trial, TrialState.FAIL)
        _logger.info(
            "trial %d was left running %s by a run that ended: failed, and retried "
            "(from its last checkpoint where it has one)",
            trial.number,
            where,
        )

    def _storage_state(self, trial: FrozenTrial, state: TrialState) -> None:
        storage = _compat.storage_of(self.study)
        storage.set_trial_state_values(_compat.trial_id(trial), state)


def _reached(trial: FrozenTrial, step: int) -> bool:
    return trial.last_step is not None and trial.last_step >= step


def _to_rung(rung: int) -> Callable[[PhaseResult], bool]:
    """Pause at ``rung`` (a retry training again from the start passes the earlier ones)."""
    return lambda result: result.rung is not None and result.rung >= rung


def _to_end(result: PhaseResult) -> bool:
    return False
