from __future__ import annotations

import json
import math
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import optuna_dashboard
import pytest
from optuna.trial import TrialState
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

from optuna_sm2 import weighted_objective
from optuna_sm2.analysis import RungSummary, summarize_study
from optuna_sm2.cli._dashboard_server import make_dashboard_server
from optuna_sm2.pruners import RankedRecord
from optuna_sm2.visualization import (
    FIGURE_IDS,
    NOTE_HEADING,
    attach_to_dashboard,
    build_figures,
)
from tests.support.dashboard_studies import RUNG_0, TOTALS, build_dashboard_study
from tests.support.report_studies import add, build_sm2_study, sm2_attrs


def _load(url: str, name: str = "sm2") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


@contextmanager
def serving(storage: optuna.storages.BaseStorage) -> Iterator[str]:
    """The real optuna-dashboard WSGI app on 127.0.0.1, a free port, in a background thread."""
    server = make_dashboard_server(storage, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def _scores(rungs: tuple[RungSummary, ...]) -> list[tuple[RungSummary, RankedRecord]]:
    return [(r, e) for r in rungs for e in r.ranking.entries]


def test_rung_scores_split_eq2_over_own_records(tmp_path: Path) -> None:
    study = _load(build_dashboard_study(tmp_path / "s.db"))
    scores = _scores(summarize_study(study, alpha=0.6, beta=0.3).rungs)
    assert [(r.rung, s.trial) for r, s in scores] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
        (1, 1),
    ]
    values, energies, lrs = (list(x) for x in zip(*RUNG_0.values(), strict=True))
    expected = weighted_objective(values, energies, lrs, alpha=0.6, beta=0.3)
    for r, s in scores[:4]:
        assert len(r.ranking.records) == 4 and r.ranking.left_out == {}
        assert s.score == pytest.approx(expected[s.trial])
        assert sum(s.terms.values()) == pytest.approx(s.score)
    # Trial 1 has the best value at rung 0: its α·P is the whole α.
    assert scores[1][1].terms["performance"] == pytest.approx(0.6)
    # Trial 2 has the lowest energy: its (1-α)·β·E is the whole (1-α)·β.
    assert scores[2][1].terms["energy"] == pytest.approx(0.4 * 0.3)
    # Trial 3 has the largest LR: its (1-α)·(1-β)·LR is the whole (1-α)·(1-β).
    assert scores[3][1].terms["lr"] == pytest.approx(0.4 * 0.7)
    assert ["promoted" if s.promoted else "pruned" for _, s in scores] == [
        "promoted",
        "promoted",
        "pruned",
        "pruned",
        "promoted",
        "pruned",
    ]
    # What the trials did next, as stored: 0 went on and completed, 1 was pruned at rung 1.
    assert [r.outcomes[s.trial] for r, s in scores] == [
        "went on",
        "went on",
        "pruned",
        "pruned",
        "complete",
        "pruned",
    ]


def test_inherited_records_and_missing_energy(tmp_path: Path) -> None:
    # Trial 4 of the report study holds only trial 3's inherited record: not a competitor.
    study = _load(build_sm2_study(tmp_path / "s.db"))
    rung_0 = summarize_study(study).rungs[0]
    assert [s.trial for s in rung_0.ranking.entries] == [0, 1, 2, 3]
    # A competitor without energy: energy is left out and the other weights renormalized.
    add(
        study,
        TrialState.PRUNED,
        64,
        sm2_attrs(10.0, 5.0, 1.0, 0, 1),
        {0: 0.1},
        {"sm2:rung_0": {"trial": 6, "value": 0.1, "energy_per_epoch_j": None, "stable_lr": 0.1}},
    )
    rung_0 = summarize_study(study).rungs[0]
    assert rung_0.ranking.left_out == {"energy": (6,)}
    assert all(s.terms["energy"] == 0.0 for s in rung_0.ranking.entries)
    best = rung_0.ranking.entry(0)
    assert best.terms["performance"] == pytest.approx(0.75 / 0.875)
    with pytest.raises(ValueError, match="alpha"):
        summarize_study(study, alpha=1.5)


def test_figures(tmp_path: Path) -> None:
    study = _load(build_dashboard_study(tmp_path / "s.db"))
    figures = build_figures(study)
    assert list(figures) == list(FIGURE_IDS.values())
    estimate = "cpu-time-estimate: an estimate"
    for graph_id in ("sm2-energy-vs-performance", "sm2-energy-per-trial", "sm2-cumulative-energy"):
        layout = figures[graph_id].layout
        assert estimate in layout.title.text
        assert estimate in (layout.xaxis.title.text + layout.yaxis.title.text)
        assert "measured" not in layout.title.text

    pareto = figures["sm2-energy-vs-performance"]
    front = next(t for t in pareto.data if t.name == "Pareto front")
    assert list(front.x) == [20.0, 30.0, 40.0] and list(front.y) == [0.3, 0.65, 0.9]
    assert "accuracy" in pareto.layout.yaxis.title.text

    split = {t.name: list(t.y) for t in figures["sm2-energy-per-trial"].data}
    assert set(split) == {"exploration", "training", "evaluation"}
    per_trial = [sum(parts) for parts in zip(*split.values(), strict=True)]
    assert per_trial == [TOTALS[n] for n in sorted(TOTALS)]

    score = figures["sm2-rung-scores"]
    assert "α=0.75, β=0.5" in score.layout.title.text
    assert [t.name for t in score.data][:3] == [
        "α·P (performance)",
        "(1-α)·β·E (energy per epoch)",
        "(1-α)·(1-β)·LR (stable learning rate)",
    ]

    cumulative = figures["sm2-cumulative-energy"].data[0]
    assert list(cumulative.y) == sorted(cumulative.y)
    assert cumulative.y[-1] == sum(TOTALS.values())


def test_minimize_pareto_and_unsplit_energy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="loss", direction="minimize")
    for per_epoch, loss in ((10.0, 2.0), (20.0, 1.0), (30.0, 1.5)):
        add(study, TrialState.COMPLETE, 32, sm2_attrs(100.0, 30.0, per_epoch, 3, 1), {3: loss})
    figures = build_figures(study)
    front = next(t for t in figures["sm2-energy-vs-performance"].data if t.name == "Pareto front")
    assert list(front.x) == [10.0, 20.0] and list(front.y) == [2.0, 1.0]
    names = [t.name for t in figures["sm2-energy-per-trial"].data]
    assert names == ["exploration", "not split (training + evaluation, or unattributed)"]
    assert "rapl: measured" in figures["sm2-energy-per-trial"].layout.title.text


def test_attach_is_idempotent_and_keeps_user_notes(tmp_path: Path) -> None:
    study = _load(build_dashboard_study(tmp_path / "s.db"))
    storage = study._storage
    first = attach_to_dashboard(study)
    assert first.notes_written == (0, 1, 2, 3)
    attrs_after_first = storage.get_study_system_attrs(study._study_id)
    second = attach_to_dashboard(study)
    assert second.figure_ids == first.figure_ids and second.notes_written == ()
    attrs = storage.get_study_system_attrs(study._study_id)
    assert attrs == attrs_after_first
    graphs = get_plotly_graph_objects(attrs)
    assert sorted(graphs) == sorted(FIGURE_IDS.values())
    # Stored as JSON text (plotly's to_json), chunked into string system attrs: no pickle.
    for text in graphs.values():
        assert json.loads(text)["data"]
    assert all(isinstance(v, (str, int, float, bool, list, dict)) for v in attrs.values())
    assert study.metric_names == ["accuracy"]

    handle = optuna.Trial(study, study.trials[1]._trial_id)
    note = optuna_dashboard.get_note(handle)
    assert note.startswith(NOTE_HEADING)
    assert "cpu-time-estimate: an estimate" in note
    assert "window [0.025, 0.1]" in note
    assert "rung 1: value 0.65" in note and "pruned" in note
    optuna_dashboard.save_note(handle, "my own remark\n\n" + note.replace("0.65", "0.66"))
    third = attach_to_dashboard(study)
    assert third.notes_written == (1,)
    assert optuna_dashboard.get_note(handle) == "my own remark\n\n" + note


def test_dashboard_http_api_lists_figures_and_attrs(tmp_path: Path) -> None:
    study = _load(build_dashboard_study(tmp_path / "s.db"))
    attach_to_dashboard(study)
    attach_to_dashboard(study)
    with serving(study._storage) as base:
        listing = _get_json(f"{base}/api/studies")
        assert [s["study_name"] for s in listing["study_summaries"]] == ["sm2"]
        detail = _get_json(f"{base}/api/studies/{study._study_id}")
        with urllib.request.urlopen(f"{base}/dashboard", timeout=10) as response:
            assert b"<html" in response.read().lower()

    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert sorted(graphs) == sorted(FIGURE_IDS.values())  # once each, after two attaches
    assert "Pareto front" in [t["name"] for t in graphs["sm2-energy-vs-performance"]["data"]]
    assert detail["objective_names"] == ["accuracy"]
    assert detail["user_attrs"][0]["key"] == "sm2.schedule"
    union = {a["key"] for a in detail["union_user_attrs"]}
    assert {"sm2.energy_total_j", "sm2.energy_source", "sm2.stable_lr"} <= union
    trial = detail["trials"][0]
    user_attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
    assert user_attrs["sm2.energy_total_j"] == "1000.0"
    assert user_attrs["sm2.energy_source"] == "cpu-time-estimate"
    assert trial["note"]["body"].startswith(NOTE_HEADING)
    assert not math.isnan(trial["values"][0])


def test_pareto_front_is_a_solid_staircase_with_spreads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="loss", direction="minimize")
    for per_epoch, loss, spread in ((10.0, 2.0, 0.1), (20.0, 1.0, None), (30.0, 1.5, 0.5)):
        attrs = {**sm2_attrs(100.0, 30.0, per_epoch, 3, 1), "sm2.energy_per_epoch_spread": spread}
        add(study, TrialState.COMPLETE, 32, attrs, {3: loss})
    figure = build_figures(study)["sm2-energy-vs-performance"]
    front = next(t for t in figure.data if t.name == "Pareto front")
    assert front.line.shape == "hv" and front.line.dash is None and front.line.width >= 2
    assert front.mode == "lines+markers" and front.marker.size > 10  # points highlighted
    # The last step runs on to the right edge (30 J), in the front's legend group.
    tail = [t for t in figure.data if t.legendgroup == "front" and t.showlegend is False]
    assert [list(t.x) for t in tail] == [[20.0, 30.0]] and list(tail[0].y) == [1.0, 1.0]
    complete = next(t for t in figure.data if t.name == "complete")
    assert list(complete.error_x.array) == [1.0, None, 15.0]  # spread x energy per epoch


def test_study_note_has_the_headline(tmp_path: Path) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    study = _load(url)
    result = attach_to_dashboard(study)
    assert result.study_note_written
    note = optuna_dashboard.get_note(study)
    assert note.startswith(NOTE_HEADING)
    assert "total energy: **1530.0 J** (0.425 Wh) over 5 of 6 trials; rapl: measured" in note
    assert "exploration: 240.0 J (15.7 % of the total)" in note
    assert "spent on pruned trials: 480.0 J (31.4 %)" in note
    assert "saving against training every configuration to the end: **1270.0 J, 45.4 %**" in note
    assert (
        "best configuration: trial 0 (batch_size 32), stable LR 0.25: accuracy 0.9, 1000.0 J"
        in note
    )
    assert "unmeasured trials" in note and "pruner: alpha 0.75" in note
    optuna_dashboard.save_note(study, "mine\n\n" + note.replace("1530.0", "1.0"))
    again = attach_to_dashboard(study)
    assert again.study_note_written and again.notes_written == ()
    assert optuna_dashboard.get_note(study) == "mine\n\n" + note
    assert not attach_to_dashboard(study).study_note_written


def test_unmeasured_and_partly_measured_trials_are_said_so(tmp_path: Path) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    study = _load(url)
    partial = {**sm2_attrs(40.0, 10.0, 0.0123, 2, 1), "sm2.energy_invalid_windows": 3}
    add(study, TrialState.PRUNED, 64, partial, {0: 0.5})
    attach_to_dashboard(study)
    view = optuna.load_study(study_name="sm2", storage=url)
    notes = {
        t.number: optuna_dashboard.get_note(optuna.Trial(view, t._trial_id)) for t in view.trials
    }
    assert "energy total: unmeasured (no sm2.energy_total_j; not counted as 0 J)" in notes[5]
    assert "0.0 J" not in notes[5]
    assert "partly measured: 3 windows missing, a lower bound" in notes[6]
    assert "energy per epoch: 0.0123 J" in notes[6]
    figures = build_figures(view)
    split = figures["sm2-energy-per-trial"]
    assert "#5 (batch 32)" not in split.data[0].x  # no bar, not a 0 J one
    assert "unmeasured, no bar: #5 (batch 32)" in split.layout.title.text
    assert "3 windows not measured" in split.data[0].customdata[-1]
    assert "1 unmeasured trial not counted" in figures["sm2-cumulative-energy"].layout.title.text


def test_stored_pruner_settings_are_drawn_and_overrides_ignored(tmp_path: Path) -> None:
    url = build_dashboard_study(tmp_path / "s.db")
    study = _load(url)
    study.set_user_attr(
        "sm2.pruner", {"alpha": 0.6, "beta": 0.3, "reduction_factor": 2, "version": "0.1.0"}
    )
    title = build_figures(study, alpha=1.0)["sm2-rung-scores"].layout.title.text
    assert "α=0.6, β=0.3" in title and "stored in the study by its pruner" in title


def test_a_diverged_competitor_is_said_so(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="sm2")
    for number, value in enumerate([14.0, 30.0, 5e21, 190.0]):
        record = {"trial": number, "value": value, "energy_per_epoch_j": 50.0, "stable_lr": 0.1}
        add(
            study,
            TrialState.PRUNED,
            32 * 2**number,
            sm2_attrs(100.0, 10.0, 50.0, 1, 1),
            {0: value},
            {"sm2:rung_0": record},
        )
    figure = build_figures(study)["sm2-rung-scores"]
    hovers = figure.data[0].customdata
    assert ["diverged" in h for h in hovers] == [False, False, True, False]
    assert "rank 4 of 4" in figure.data[-1].text[2]


def test_pareto_error_bars_stay_physical_and_its_best_points_are_named(tmp_path: Path) -> None:
    """A spread wider than the figure (noisy estimate) draws the lower bar to 0 J, not below;
    the front's points carry their trial and batch size on the figure, not only on hover."""
    url = f"sqlite:///{tmp_path / 'noisy.db'}"
    study = optuna.create_study(storage=url, study_name="noisy", direction="maximize")
    for i, (per_epoch, spread, accuracy) in enumerate([(10.0, 1.6, 0.9), (4.0, 0.25, 0.7)]):
        user_attrs = {
            **sm2_attrs(100.0, 10.0, per_epoch, 4, 1),
            "sm2.energy_per_epoch_spread": spread,
        }
        add(study, TrialState.COMPLETE, 32 * 2**i, user_attrs, {0: accuracy})
    figure = build_figures(study)["sm2-energy-vs-performance"]
    (complete,) = [t for t in figure.data if t.name == "complete"]
    upper, lower = list(complete.error_x.array), list(complete.error_x.arrayminus)
    assert upper == pytest.approx([16.0, 1.0])  # the half-range, as stored
    assert lower == pytest.approx([10.0, 1.0])  # never below 0 J
    assert all(x - low >= 0.0 for x, low in zip(complete.x, lower, strict=True))
    (names,) = [t for t in figure.data if t.mode == "text"]
    assert list(names.text) == ["#1 (batch 64)", "#0 (batch 32)"]
    assert names.cliponaxis is False
