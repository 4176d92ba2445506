"""benchmarks/lr_regret.py's horizon regret: its arithmetic and its schedule's bookkeeping.

The benchmark's figures (docs/lr-sweep.md) are only as good as these: the regret of known
numbers, every arm of a case starting from the same weights and training on the same batches,
the user's optimizer carried across blocks, and the stored cases resuming a run.
"""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "lr_regret.py"
    spec = importlib.util.spec_from_file_location("lr_regret", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lr_regret"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load()


def _data(n: int = 40) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 64, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return (x, y), (x[:10], y[:10])


def test_regret_of_known_numbers() -> None:
    assert doctest.testmod(bench, verbose=False).failed == 0  # horizon_regret's example
    score = bench.horizon_regret(0.55, [0.2, 0.9, 0.6, None], chance=0.2)
    assert score.best_index == 1 and score.best == 0.9
    assert score.regret == pytest.approx(0.5) and not score.at_chance
    # SM² above the best constant: a negative regret, shown as measured
    assert bench.horizon_regret(0.95, [0.9], chance=0.2).regret == pytest.approx(-1 / 14)
    # a diverged SM² arm counts as chance: regret 1, at chance
    diverged = bench.horizon_regret(None, [0.2, 0.9], chance=0.2)
    assert diverged.regret == 1.0 and diverged.at_chance and diverged.sm2 == 0.2
    # within AT_CHANCE of chance while a constant trains: at chance
    assert bench.horizon_regret(0.24, [0.9], chance=0.2).at_chance
    # no constant clearly above chance: not counted
    idle = bench.horizon_regret(0.1, [0.25, None], chance=0.2)
    assert idle.regret is None and not idle.at_chance and idle.best_index == 0
    # every constant diverged
    assert bench.horizon_regret(0.5, [None, None], chance=0.2).best_index is None


def test_every_arm_starts_alike_and_trains_on_the_same_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _data()
    torch.manual_seed(0)
    start = bench.Start(nn.Linear(64, 10), None)
    schedule = bench.Schedule(blocks=3, epochs=2)
    seen: list[tuple[int, int, int, str]] = []

    def recording(model: nn.Module, optimizer: torch.optim.Optimizer, block: int) -> float:
        weights = bench.fingerprint(model.state_dict().values())
        seen.append((block, id(optimizer), len(optimizer.state), weights))
        return 0.01 * (block + 1)

    recorded = bench.train_schedule(start, "momentum", data, 8, schedule, recording)
    assert recorded.lrs == [0.01, 0.02, 0.03]
    assert [s[0] for s in seen] == [0, 1, 2]  # one decision before each block
    assert len({s[1] for s in seen}) == 1  # the same optimizer throughout ...
    assert [s[2] for s in seen] == [0, 2, 2]  # ... its momentum buffers carried across blocks
    assert len({s[3] for s in seen}) == 3  # each decision sees the weights trained so far
    sm2 = bench.train_schedule(start, "momentum", data, 8, schedule, bench.sm2_rule(data[0], 8))
    assert len(sm2.lrs) == 3 and sm2.quality is not None
    constants = [
        bench.train_schedule(start, "momentum", data, 8, schedule, bench.constant(lr))
        for lr in (1e-4, 1e-2)
    ]
    arms = [recorded, sm2, *constants]
    assert {arm.start_digest for arm in arms} == {start.digest()}
    assert len({arm.order_digest for arm in arms}) == 1
    # another order is seen as one
    monkeypatch.setattr(bench, "ORDER_SEED", bench.ORDER_SEED + 1)
    other = bench.train_schedule(start, "momentum", data, 8, schedule, bench.constant(1e-2))
    assert other.order_digest != sm2.order_digest
    # the start itself is untouched by its arms
    assert start.digest() == bench.fingerprint(start.model.state_dict().values())


def test_a_diverging_arm_stops_and_scores_as_chance() -> None:
    torch.manual_seed(0)
    start = bench.Start(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), None)
    arm = bench.train_schedule(start, "sgd", _data(), 8, bench.Schedule(), bench.constant(1e30))
    assert arm.quality is None and arm.lrs == [1e30]  # stopped in its first block


def test_cases_are_stored_and_a_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "CONSTANTS", [1e-3, 1e-1])
    schedule = bench.Schedule(blocks=2, epochs=1)
    cases = bench.horizon_cases(["sgd", "adam"], ["logreg"], [1024], ["trained"])
    assert [c.optimizer for c in cases] == ["sgd", "adam"]
    path = tmp_path / "cases.json"
    store = bench.CaseStore.load(path)
    bench.run_horizon(cases, schedule, store, "before", minutes=0.0)  # stops before a case
    assert not path.exists()
    bench.run_horizon(cases[:1], schedule, store, "before", minutes=None)
    stored = bench.CaseStore.load(path)
    key = cases[0].key(schedule)
    assert stored.done(key, "before") and not stored.done(key, "after")
    assert [arm["lrs"] for arm in stored.constants[key]] == [[1e-3, 1e-3], [1e-1, 1e-1]]

    def untrainable(*args: object) -> None:
        raise AssertionError("a stored case trained again")

    monkeypatch.setattr(bench, "train_schedule", untrainable)
    bench.run_horizon(cases[:1], schedule, stored, "before", minutes=None)
    # another label trains only the SM² arm: the constants are kept
    calls: list[object] = []
    first = stored.constants[key][0]

    def sm2_only(*args: object) -> Any:
        calls.append(args)
        return bench.Arm(0.5, [0.1, 0.1], first["start_digest"], first["order_digest"])

    monkeypatch.setattr(bench, "train_schedule", sm2_only)
    bench.run_horizon(cases[:1], schedule, stored, "after", minutes=None)
    assert len(calls) == 1


def test_a_trained_start_gives_every_arm_the_same_optimizer_state() -> None:
    data = _data()
    case = bench.Case("adam", "logreg", 8, "trained")
    start = bench.start_of(case, data[0])
    assert start.optimizer_state is not None and start.optimizer_state["state"]
    digest = start.digest()
    schedule = bench.Schedule(blocks=1, epochs=1)
    arms = [
        bench.train_schedule(start, "adam", data, 8, schedule, bench.constant(lr))
        for lr in (1e-3, 1e-1, 1e-3)
    ]
    # the arms' training leaves the start's state alone: each arm starts from it
    assert start.digest() == digest
    assert {arm.start_digest for arm in arms} == {digest}
    assert arms[0] == arms[2]
