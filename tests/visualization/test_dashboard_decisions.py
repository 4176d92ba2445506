"""The dashboard draws the pruner's own decisions: one ranking rule, two readers."""

from __future__ import annotations

import warnings

import optuna
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optuna_sm2 import SuccessiveHalvingEnergyPruner, report
from optuna_sm2.analysis import summarize_study
from optuna_sm2.visualization import FIGURE_IDS, trial_note
from optuna_sm2.visualization._attach import figures_of

competitor = st.tuples(
    st.one_of(st.floats(-100, 100), st.sampled_from([0.0, 1.0])),  # value
    st.one_of(st.none(), st.floats(0.5, 500.0)),  # energy per epoch (None: not reported)
    st.one_of(st.none(), st.floats(1e-3, 1.0)),  # stable LR
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rungs=st.lists(st.lists(competitor, min_size=1, max_size=9), min_size=1, max_size=2),
    alpha=st.floats(0, 1),
    beta=st.floats(0, 1),
    reduction_factor=st.integers(2, 4),
    bootstrap_count=st.integers(0, 3),
    maximize=st.booleans(),
    lr_scale=st.sampled_from(["log", "linear"]),
)
def test_promoted_marks_are_the_pruners_decisions(
    rungs, alpha, beta, reduction_factor, bootstrap_count, maximize, lr_scale
):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = SuccessiveHalvingEnergyPruner(
        reduction_factor=reduction_factor,
        bootstrap_count=bootstrap_count,
        alpha=alpha,
        beta=beta,
        lr_scale=lr_scale,
        rung_steps=[0, 1],
    )
    study = optuna.create_study(direction="maximize" if maximize else "minimize", pruner=pruner)
    # Random rungs: rung 0's competitors, then rung 1's among the first of them (synchronous).
    trials = [study.ask() for _ in rungs[0]]
    for rung, competitors in enumerate(rungs):
        for trial, (value, energy, lr) in zip(trials, competitors, strict=False):
            report(trial, value, rung, energy_per_epoch_j=energy, stable_lr=lr)
            pruner.record_rung(study, study._storage.get_trial(trial._trial_id))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The (energy per epoch|stable learning rate) is missing")
        decisions = {
            (rung, t.number): pruner.is_promoted(study, t, rung)
            for t in study.get_trials(deepcopy=False)
            for rung in range(len(rungs))
            if f"sm2:rung_{rung}" in t.system_attrs
        }
    assert decisions  # every competitor recorded: values are finite

    # The dashboard's marks, read back from the drawn figure.
    summary = summarize_study(study, alpha=0.123)  # the stored settings win over an override
    assert summary.pruner == pruner.settings and summary.pruner_origin == "study"
    figure = figures_of(summary)[FIGURE_IDS["score"]]
    marks = figure.data[-1]
    keys = [(int(r.split()[1]), int(t[1:])) for r, t in zip(*marks.x, strict=True)]
    drawn = {
        key: symbol == "circle" for key, symbol in zip(keys, marks.marker.symbol, strict=True)
    }
    assert drawn == decisions
    # And the trial notes say the same.
    for (rung, number), promoted in decisions.items():
        note = trial_note(summary, number)
        line = next(x for x in note.splitlines() if x.startswith(f"  - rung {rung}:"))
        assert line.split(": ")[-1].startswith("promoted" if promoted else "pruned")


def test_asynchronous_marks_are_the_decisions_stored_when_taken():
    """study.optimize decides each trial when it arrives: the marks show that decision, not a
    ranking of today's competitors, and the notes say why a trial pruned now went on."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = SuccessiveHalvingEnergyPruner(alpha=1.0, rung_steps=[0, 1])
    study = optuna.create_study(direction="maximize", pruner=pruner)
    values = iter([0.1, 0.5, 0.9])  # each arrives to find only worse trials at rung 0

    def objective(trial):
        value = next(values)
        for step in (0, 1):
            report(trial, value, step, energy_per_epoch_j=10.0, stable_lr=0.1)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=3)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "COMPLETE"]
    summary = summarize_study(study)
    rung_0 = summary.rungs[0]
    assert rung_0.all_stored
    assert [(e.decision.rank, e.decision.competitors) for e in rung_0.entries] == [
        (1, 1),
        (1, 2),
        (1, 3),
    ]
    # Ranked now, trial 0 (0.1 of 0.1, 0.5, 0.9; k = 1) would be pruned.
    assert rung_0.ranking.promoted == (2,)
    figure = figures_of(summary)[FIGURE_IDS["score"]]
    marks = figure.data[-1]
    assert list(marks.marker.symbol)[:3] == ["circle"] * 3
    assert "rank 1 of 1 when it arrived" in marks.text[0]
    assert all(e.explanation() is None for e in rung_0.entries)

    # The same study's records without their decisions (as an older optuna-sm2 wrote them):
    # ranked now, and the words say why trial 0, pruned now, completed.
    older = optuna.create_study(direction="maximize")
    older.set_user_attr("sm2.pruner", study.user_attrs["sm2.pruner"])
    for t in study.trials:
        system = {
            k: {f: x for f, x in r.items() if f != "decision"} for k, r in t.system_attrs.items()
        }
        older.add_trial(
            optuna.trial.create_trial(
                state=t.state,
                value=t.value,
                intermediate_values=t.intermediate_values,
                user_attrs=t.user_attrs,
                system_attrs=system,
            )
        )
    study = older
    summary = summarize_study(study)
    assert not any(rung.all_stored for rung in summary.rungs)
    for rung, then in ((0, "went on"), (1, "complete")):
        entry = summary.rungs[rung].entry(0)
        assert not entry.promoted and entry.outcome == then
        why = entry.explanation()
        assert why is not None and "when it arrived" in why and f"but {then}" in why
        assert why in trial_note(summary, 0)
