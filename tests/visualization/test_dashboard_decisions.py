"""The dashboard draws the pruner's own decisions: one ranking rule, two readers."""

from __future__ import annotations

import warnings

import optuna
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optuna_sm2 import SuccessiveHalvingEnergyPruner, report
from optuna_sm2.analysis import summarize_study
from optuna_sm2.visualization import FIGURE_IDS, figures_of, trial_note

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
