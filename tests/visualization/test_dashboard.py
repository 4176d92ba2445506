from __future__ import annotations

import doctest
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
from optuna_sm2.cli._dashboard import make_dashboard_server
from optuna_sm2.visualization import _dashboard
from optuna_sm2.visualization._dashboard import (
    FIGURE_IDS,
    NOTE_HEADING,
    attach_to_dashboard,
    build_figures,
    rung_scores,
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


def test_doctests() -> None:
    assert doctest.testmod(_dashboard, raise_on_error=True).failed == 0


def test_rung_scores_split_eq2_over_own_records(tmp_path: Path) -> None:
    study = _load(build_dashboard_study(tmp_path / "s.db"))
    scores = rung_scores(study, alpha=0.6, beta=0.3)
    assert [(s.rung, s.trial) for s in scores] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    values, energies, lrs = (list(x) for x in zip(*RUNG_0.values(), strict=True))
    expected = weighted_objective(values, energies, lrs, alpha=0.6, beta=0.3)
    for s in scores[:4]:
        assert s.competitors == 4 and s.left_out == ()
        assert s.score == pytest.approx(expected[s.trial])
        assert sum(s.parts.values()) == pytest.approx(s.score)
    # Trial 1 has the best value at rung 0: its α·P is the whole α.
    assert scores[1].parts["performance"] == pytest.approx(0.6)
    # Trial 2 has the lowest energy: its (1-α)·β·E is the whole (1-α)·β.
    assert scores[2].parts["energy"] == pytest.approx(0.4 * 0.3)
    # Trial 3 has the largest LR: its (1-α)·(1-β)·LR is the whole (1-α)·(1-β).
    assert scores[3].parts["lr"] == pytest.approx(0.4 * 0.7)
    assert [s.decision for s in scores] == [
        "promoted",
        "promoted",
        "pruned",
        "pruned",
        "promoted",
        "pruned",
    ]


def test_inherited_records_and_missing_energy(tmp_path: Path) -> None:
    # Trial 4 of the report study holds only trial 3's inherited record: not a competitor.
    study = _load(build_sm2_study(tmp_path / "s.db"))
    rung_0 = [s for s in rung_scores(study) if s.rung == 0]
    assert [s.trial for s in rung_0] == [0, 1, 2, 3]
    # A competitor without energy: energy is left out and the other weights renormalized.
    add(
        study,
        TrialState.PRUNED,
        64,
        sm2_attrs(10.0, 5.0, 1.0, 0, 1),
        {0: 0.1},
        {"sm2:rung_0": {"trial": 6, "value": 0.1, "energy_per_epoch_j": None, "stable_lr": 0.1}},
    )
    rung_0 = [s for s in rung_scores(study) if s.rung == 0]
    assert {s.left_out for s in rung_0} == {("energy",)}
    assert all(s.parts["energy"] == 0.0 for s in rung_0)
    best = next(s for s in rung_0 if s.trial == 0)
    assert best.parts["performance"] == pytest.approx(0.75 / 0.875)
    with pytest.raises(ValueError, match="alpha"):
        rung_scores(study, alpha=1.5)


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
