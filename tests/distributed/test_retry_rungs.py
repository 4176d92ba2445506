"""A killed worker's retry is ranked with its configuration's figures at each rung, never
against its own failed predecessor (issue 22, item 2).

The kill is simulated in process as Optuna's heartbeat handles a dead worker: the trial is
marked FAIL and ``RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)`` queues
its retry, which inherits its system attrs (rung records included), user attrs and
intermediate values. The retry, as ``SM2Objective`` does, does not report again the steps it
inherited.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2 import SuccessiveHalvingEnergyPruner, _compat, attrs, report
from optuna_sm2.pruners import read_records
from tests.support.storages import fail_and_retry, make_storage

KINDS = ("sqlite", "journal")


def _study(tmp_path: Path, kind: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=make_storage(kind, tmp_path),
        direction="maximize",
        pruner=SuccessiveHalvingEnergyPruner(rung_steps=[0, 2]),  # alpha 0.75: figures count
    )


def _own(trial: optuna.trial.FrozenTrial) -> dict[int, dict[str, object]]:
    return {
        rung: record.to_json()
        for rung, record in read_records(trial.number, trial.system_attrs).records.items()
    }


@pytest.mark.parametrize("kind", KINDS)
def test_the_retry_of_a_killed_trial_is_not_pruned_by_its_predecessor(
    tmp_path: Path, kind: str
) -> None:
    study = _study(tmp_path, kind)
    killed = study.ask()
    report(killed, 0.9, 0, energy_per_epoch_j=100.0, stable_lr=0.1)
    assert not killed.should_prune()  # alone at rung 0: promoted
    # A re-exploration's figures (another LR, the sweep's energy), then the kill.
    report(killed, 0.91, 1, energy_per_epoch_j=400.0, stable_lr=0.001)
    fail_and_retry(study, killed)

    def resumed(trial: optuna.trial.Trial) -> float:
        assert _compat.frozen(trial).system_attrs["failed_trial"] == killed.number
        for step in (2, 3):  # steps 0 and 1 are inherited, not reported again
            report(trial, 0.95, step, energy_per_epoch_j=120.0, stable_lr=0.1)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 0.95

    study.optimize(resumed, n_trials=1)
    failed, retry = study.trials
    # Before the fix the retry recorded rung 0 again with its later figures, competed against
    # its predecessor's record of the same configuration and value, lost, and was pruned: the
    # study had no COMPLETE trial.
    assert retry.state == TrialState.COMPLETE
    # Rung 0 is its configuration's, decided once (the predecessor's record); the retry
    # earned rung 1 itself, alone there, with its own figures at step 2.
    assert list(_own(failed)) == [0] and _own(failed)[0]["decision"]["promoted"] is True
    assert list(_own(retry)) == [1]
    rung_1 = _own(retry)[1]
    assert (rung_1["value"], rung_1["energy_per_epoch_j"], rung_1["stable_lr"]) == (
        0.95,
        120.0,
        0.1,
    )
    assert rung_1["decision"]["competitors"] == 1 and rung_1["decision"]["promoted"] is True


@pytest.mark.parametrize("kind", KINDS)
def test_a_rung_the_predecessor_reached_is_ranked_with_its_figures_then(
    tmp_path: Path, kind: str
) -> None:
    study = _study(tmp_path, kind)
    other = study.ask()
    for step, value in enumerate((0.5, 0.5, 0.6)):
        report(other, value, step, energy_per_epoch_j=150.0, stable_lr=0.05)
        assert not other.should_prune()
    study.tell(other, 0.6)
    killed = study.ask()
    report(killed, 0.9, 0, energy_per_epoch_j=150.0, stable_lr=0.05)
    assert not killed.should_prune()
    report(killed, 0.9, 1, energy_per_epoch_j=150.0, stable_lr=0.05)
    assert not killed.should_prune()
    # Rung 1's step is reported, and the worker dies before asking should_prune().
    report(killed, 0.7, 2, energy_per_epoch_j=150.0, stable_lr=0.05)
    fail_and_retry(study, killed)
    retry = study.ask()
    # The retry goes on past the inherited steps with other figures (a later block).
    report(retry, 0.72, 3, energy_per_epoch_j=900.0, stable_lr=0.5)
    retry.should_prune()
    record = _own(_compat.frozen(retry))[1]
    # Rung 1 (step 2) ranks the value and figures its configuration had at step 2: the
    # predecessor's, not the retry's later ones.
    assert (record["value"], record["energy_per_epoch_j"], record["stable_lr"]) == (
        0.7,
        150.0,
        0.05,
    )
    assert record["decision"]["competitors"] == 2  # the other trial and this configuration
    assert 0 not in _own(_compat.frozen(retry))  # rung 0 stays the predecessor's


def test_optuna_compares_a_retry_with_its_predecessor_where_sm2_does_not(tmp_path: Path) -> None:
    """The one place the alpha=1 guarantee does not reach: Optuna's own pruner counts the
    inherited ``completed_rung_0`` of a retry as a second competitor of the same
    configuration; SM² counts the configuration once (docs/pruner.md)."""
    ours = _study(tmp_path, "sqlite")
    theirs = optuna.create_study(
        storage=ours._storage,
        direction="maximize",
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
    )
    killed = theirs.ask()
    killed.report(0.9, 1)
    assert not killed.should_prune()
    fail_and_retry(theirs, killed)
    retry = theirs.ask()
    assert (
        "completed_rung_0" in _compat.frozen(retry).system_attrs
    )  # inherited: both count at rung 0 now
    late = theirs.ask()
    late.report(0.8, 1)
    competing = [t for t in theirs.trials if "completed_rung_0" in t.system_attrs]
    assert [t.number for t in competing] == [killed.number, retry.number]
    assert late.should_prune()  # 0.8 against 0.9 twice: k = 1 of 3
    assert attrs.SYSTEM_ATTR_PREFIX == "sm2:"
