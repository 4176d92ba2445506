"""Energy decides only above what the meter can tell (issue 19, deliverable 2).

Configurations train on the fake NVML GPU whose counter steps every 100 ms on a fake clock (the
H100 of ``docs/gpu-validation.md``); their rung records, as TrialEnergy measured them, are
ranked against records holding the exact energies. Nothing here reads the machine's clock.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optuna_sm2 import TrialEnergy
from optuna_sm2.energy import EnergyTracker, NvmlMeter
from optuna_sm2.pruners import RungRanking, RungRecord, rank_rung
from optuna_sm2.testing import fake_pynvml
from optuna_sm2.testing.fake_pynvml import FakeGpu

PERIOD_S = 0.1
EVAL_S = 0.013


@dataclass(frozen=True)
class Config:
    """One configuration: its power while training, how long an epoch lasts, its value."""

    power_w: float
    epoch_s: float
    value: float

    @property
    def exact_j(self) -> float:
        return self.power_w * self.epoch_s


def _measure(configs: Sequence[Config], epochs: int, phases: Sequence[float]) -> list[RungRecord]:
    """Train each configuration for ``epochs`` on the stepping fake GPU, starting ``phase``
    seconds into the counter's period, and return its rung record as the pruner stores it.

    The GPU draws the configuration's power throughout (its evaluation too, and one step
    before its first epoch): the resolution bounds a figure drawn at steady power (a step's
    worth of another power at a window's edge is off by that power's step).
    """
    gpu = FakeGpu("GPU-aaaaaaaa-0000", enforced_power_limit_mw=700_000, counter_period_s=PERIOD_S)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "pynvml", fake_pynvml)
        fake_pynvml.reset([gpu])
        records = []
        with NvmlMeter([0]) as meter:
            tracker = EnergyTracker(meter, sync_cuda=False, clock=fake_pynvml.clock)
            for i, (config, phase) in enumerate(zip(configs, phases, strict=True)):
                gpu.power_mw = round(1000 * config.power_w)
                fake_pynvml.advance(PERIOD_S + phase)  # a step at this power before it starts
                book = TrialEnergy(optuna.trial.FixedTrial({}), tracker)
                for _ in range(epochs):
                    with book.window("train"):
                        fake_pynvml.advance(config.epoch_s)
                    with book.window("eval"):
                        fake_pynvml.advance(EVAL_S)
                records.append(
                    RungRecord(
                        i,
                        config.value,
                        book.energy_per_epoch_j,
                        energy_per_epoch_spread=book.energy_per_epoch_spread,
                        energy_per_epoch_resolution=book.energy_per_epoch_resolution,
                    )
                )
    return records


def _exact(configs: Sequence[Config]) -> list[RungRecord]:
    """The records an exact meter would give: the true energy, no spread, no steps."""
    return [
        RungRecord(i, c.value, c.exact_j, energy_per_epoch_spread=0.0)
        for i, c in enumerate(configs)
    ]


def _rank(records: Sequence[RungRecord], alpha: float = 0.5) -> RungRanking:
    return rank_rung(records, direction="maximize", alpha=alpha, beta=1.0)


def _figure(record: RungRecord) -> float:
    assert record.energy_per_epoch_j is not None  # every configuration was measured
    return record.energy_per_epoch_j


def _width(record: RungRecord) -> float:
    """Joules the record's figure may be off by, by the meter's steps."""
    return _figure(record) * (record.energy_per_epoch_resolution or 0.0)


def test_epochs_of_twenty_steps_decide_as_exact_energies() -> None:
    """2 s epochs (20 counter steps, a 5 % resolution), energies 1.5x apart or more: the rung
    decides as with exact energies, and not as performance alone would."""
    configs = [
        Config(600.0, 2.0, 0.803),
        Config(150.0, 2.05, 0.801),
        Config(300.0, 2.1, 0.802),
        Config(450.0, 1.95, 0.800),
    ]
    measured = _measure(configs, epochs=3, phases=[0.0, 0.037, 0.071, 0.093])
    for record, config in zip(measured, configs, strict=True):
        assert record.energy_per_epoch_resolution == pytest.approx(PERIOD_S / 1.9, rel=0.1)
        assert abs(_figure(record) - config.exact_j) <= _width(record)
    by_meter, by_truth = _rank(measured), _rank(_exact(configs))
    assert by_meter.promoted == by_truth.promoted == (1, 2)
    assert _rank(measured, alpha=1.0).promoted == (0, 2)  # energy did decide
    assert [e.rank for e in by_meter.entries] == [e.rank for e in by_truth.entries]


@pytest.mark.parametrize("epoch_s", [0.05, 0.12, 0.19])
def test_epochs_of_one_or_two_steps_tie_on_energy(epoch_s: float) -> None:
    """Epochs of at most two counter steps (estimated from power below one step): energies 1.5x
    apart cannot be told, so they tie, and the rung decides as performance alone would, not as
    the exact energies would."""
    configs = [
        Config(600.0, epoch_s, 0.803),
        Config(400.0, epoch_s, 0.800),
        Config(500.0, epoch_s, 0.802),
        Config(450.0, epoch_s, 0.801),
    ]
    measured = _measure(configs, epochs=4, phases=[0.0, 0.037, 0.071, 0.093])
    assert {r.energy_per_epoch_resolution for r in measured} == {1.0}
    by_meter = _rank(measured)
    assert {e.terms["energy"] for e in by_meter.entries} == {0.5}  # one energy for all
    assert by_meter.promoted == _rank(measured, alpha=1.0).promoted == (0, 2)
    assert _rank(_exact(configs)).promoted != by_meter.promoted  # the truth would decide


@settings(max_examples=150, deadline=None)
@given(
    pair=st.lists(
        st.tuples(
            st.floats(20.0, 700.0),  # power (W)
            st.floats(0.02, 3.0),  # epoch (s)
            st.floats(0.800, 0.805),  # value
            st.floats(0.0, PERIOD_S),  # phase of the counter when the configuration starts
        ),
        min_size=2,
        max_size=2,
    ),
    epochs=st.integers(1, 4),
)
def test_a_pair_decides_as_exact_energies_or_ties_within_the_resolution(
    pair: list[tuple[float, float, float, float]], epochs: int
) -> None:
    """Of two configurations (one promoted): every measured figure is within its resolution of
    the truth; when they do not tie on energy the decision is the exact energies' decision;
    when they tie it is performance's; and they never tie when their true energies differ by
    more than both figures' spread and twice their resolution."""
    configs = [Config(p, s, v) for p, s, v, _ in pair]
    measured = _measure(configs, epochs, [phase for *_, phase in pair])
    for record, config in zip(measured, configs, strict=True):
        assert abs(_figure(record) - config.exact_j) <= _width(record) * (1 + 1e-9)
    by_meter = _rank(measured, alpha=0.4)  # of two, the cheaper one wins unless tied
    tied = len({e.terms["energy"] for e in by_meter.entries}) == 1
    if tied:
        assert by_meter.promoted == _rank(measured, alpha=1.0).promoted
    else:
        assert by_meter.promoted == _rank(_exact(configs), alpha=0.4).promoted
    bound = sum(_figure(r) * (r.energy_per_epoch_spread or 0.05) + 2 * _width(r) for r in measured)
    if abs(configs[0].exact_j - configs[1].exact_j) > bound:
        assert not tied


def test_the_rung_record_carries_the_resolution_the_book_stored() -> None:
    from optuna_sm2 import SuccessiveHalvingEnergyPruner, attrs, report
    from optuna_sm2.pruners import own_records

    study = optuna.create_study(
        direction="maximize", pruner=SuccessiveHalvingEnergyPruner(rung_steps=[0])
    )
    trial = study.ask()
    trial.set_user_attr(attrs.ENERGY_PER_EPOCH_RESOLUTION, 0.25)
    report(trial, 0.5, 0, energy_per_epoch_j=10.0, stable_lr=0.1)
    trial.should_prune()
    stored = study.trials[0].system_attrs["sm2:rung_0"]
    assert stored["energy_per_epoch_resolution"] == 0.25
    assert own_records(0, study.trials[0].system_attrs)[0].energy_per_epoch_resolution == 0.25
    for bad in (-0.1, "0.2", None):
        record = RungRecord.from_json({**stored, "energy_per_epoch_resolution": bad})
        assert record is not None and record.energy_per_epoch_resolution is None
    assert "energy_per_epoch_resolution" not in RungRecord(0, 1.0, 5.0).to_json()
