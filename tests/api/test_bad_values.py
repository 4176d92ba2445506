"""Property: a bad value of any argument of the public API is one ``ValueError`` naming it.

Hypothesis draws, per argument, values of the wrong type, NaN and infinities, numbers out of
range, booleans (not numbers), strings and numpy scalars of a bad value; each call must raise
``ValueError`` whose message names the argument as the API's messages do (`` `name` ``). A
refused :func:`optuna_sm2.report` leaves a real SQLite storage as it was, byte for byte. The
companion property: numpy numbers of a good value are accepted wherever Python numbers are.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from optuna_sm2 import (
    EnergyTracker,
    SM2Objective,
    SuccessiveHalvingEnergyPruner,
    TrialEnergy,
    explore_lr,
    optimize_synchronous,
    report,
    weighted_objective,
)
from optuna_sm2.energy import CpuTimeMeter, RaplMeter, SimulatedMeter
from optuna_sm2.testing.fake_powercap import Zone, make_powercap
from tests.support.cli import fingerprint
from tests.support.tiny import tiny_data, tiny_objective

EXAMPLES = settings(max_examples=25)

# -- bad values ---------------------------------------------------------------------------------

JUNK: list[Any] = ["abc", "", "0.5", "1", b"1", [], [1], {}, {"a": 1}, (1, 2), object(), 1j]
BOOLS: list[Any] = [True, False, np.bool_(True), np.bool_(False)]
NON_FINITE: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    np.float64("nan"),
    np.float32("nan"),
    np.float32("inf"),
    np.float16("-inf"),
]

INT64_MIN = -(2**63)
FINITE: dict[str, Any] = {"allow_nan": False, "allow_infinity": False}


@dataclass(frozen=True)
class Bad:
    """Bad values of one argument: ``examples`` always tried, ``more`` drawn at random."""

    examples: list[Any]
    more: st.SearchStrategy[Any] | None = None

    @property
    def strategy(self) -> st.SearchStrategy[Any]:
        examples = st.sampled_from(self.examples)
        return examples if self.more is None else st.one_of(examples, self.more)


def _junk(optional: bool) -> list[Any]:
    return JUNK + BOOLS + ([] if optional else [None])


def bad_real(
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    optional: bool = False,
) -> Bad:
    """Anything but a finite real number in the range (``None`` is good when ``optional``)."""
    examples = _junk(optional) + NON_FINITE
    more: list[st.SearchStrategy[Any]] = []
    if low is not None:
        examples += [low - 1.0, np.float64(low - 1.0), math.ceil(low) - 1, np.int64(low - 1)]
        examples += [] if low_inclusive else [low, np.float64(low)]
        below = st.floats(max_value=low, exclude_max=low_inclusive, **FINITE)
        more += [below, below.map(np.float64), st.integers(max_value=math.ceil(low) - 1)]
        more.append(st.integers(min_value=INT64_MIN, max_value=math.ceil(low) - 1).map(np.int64))
    if high is not None:
        examples += [high + 1.0, np.float64(high + 0.5), np.float32(high + 1.0)]
        examples += [] if high_inclusive else [high]
        above = st.floats(min_value=high, exclude_min=high_inclusive, **FINITE)
        more += [above, above.map(np.float64), st.integers(min_value=math.floor(high) + 1)]
    return Bad(examples, st.one_of(more))


def bad_int(minimum: int, *, optional: bool = False, also: tuple[Any, ...] = ()) -> Bad:
    """Anything but an integer >= ``minimum``: floats (even integral ones) are not integers."""
    examples = _junk(optional) + NON_FINITE + [minimum - 1, np.int64(minimum - 1)]
    examples += [minimum + 0.5, float(minimum), np.float64(minimum), np.float32(minimum), *also]
    return Bad(
        examples,
        st.one_of(
            st.integers(max_value=minimum - 1),
            st.integers(min_value=INT64_MIN, max_value=minimum - 1).map(np.int64),
            st.floats(**FINITE),
            st.floats(**FINITE).map(np.float64),
        ),
    )


def bad_int_in(minimum: int, maximum: int, *, optional: bool = False) -> Bad:
    """Anything but an integer in ``[minimum, maximum]``."""
    low = bad_int(minimum, optional=optional)
    above = [maximum + 1, np.int64(maximum + 1), 2**64, 10**30]
    more = st.one_of(low.strategy, st.integers(min_value=maximum + 1))
    return Bad([*low.examples, *above], more)


def bad_choice(choices: tuple[str, ...]) -> Bad:
    examples = [x for x in _junk(optional=False) if x not in choices]
    examples += [c.upper() for c in choices] + [f" {choices[0]}", 1, 0.5]
    return Bad(examples, st.one_of(st.text(max_size=8), st.integers()).filter(_not_in(choices)))


def _not_in(choices: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda x: x not in choices


def not_callable(*, optional: bool = False) -> Bad:
    return Bad([*_junk(optional), 1, 0.5, np.float64(1.0)], st.one_of(st.integers(), st.floats()))


def bad_numbers(entries: Bad, *, optional: bool) -> Bad:
    """No sequence of numbers (a scalar, a string, a 2-D or ragged list), or one with a bad
    entry."""
    examples: list[Any] = [1.0, "abc", [[1.0, 2.0], [3.0, 4.0]], [[1, 2], [3]], np.float64(1.0)]
    examples += [] if optional else [None]
    examples += [[1.0, x] for x in entries.examples if x is not None]
    more = None if entries.more is None else st.tuples(st.just(1.0), entries.more).map(list)
    return Bad(examples, more)


# -- the API with good arguments, one replaced ----------------------------------------------


def _objective(**override: Any) -> SM2Objective:
    return tiny_objective(**{"batch_sizes": (8, 16), "meter": SimulatedMeter(), **override})


def _trial() -> optuna.trial.Trial:
    return optuna.create_study(direction="maximize").ask()


def _rapl(**override: Any) -> RaplMeter:
    with tempfile.TemporaryDirectory() as folder:
        root = make_powercap(Path(folder), [Zone("package-0", energy_uj=10)])
        return RaplMeter(**{"root": root, **override})


def _explore(**override: Any) -> Any:
    kwargs: dict[str, Any] = {
        "model": nn.Linear(4, 2),
        "loss_fn": nn.functional.cross_entropy,
        "batches": _batches(),
        "n_lrs": 3,
        **override,
    }
    return explore_lr(**kwargs)


def _batches(rows: int = 8, targets: int | None = None) -> list[Any]:
    """Six batches of ``rows`` inputs each, and ``targets`` targets (as many by default)."""
    x, y = tiny_data()[0]
    n = rows if targets is None else targets
    return [(x[i : i + rows], y[i : i + n]) for i in range(0, 48, 8)]


def _per_sample(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets, reduction="none")


def _synchronous(**override: Any) -> None:
    objective = _objective()
    kwargs: dict[str, Any] = {
        "study": optuna.create_study(direction="maximize", pruner=objective.make_pruner()),
        "objective": objective,
        **override,
    }
    optimize_synchronous(**kwargs)


CALLS: dict[str, Callable[..., Any]] = {
    "SuccessiveHalvingEnergyPruner": SuccessiveHalvingEnergyPruner,
    "SM2Objective": _objective,
    "EnergyTracker": lambda **kw: EnergyTracker(**{"meter": SimulatedMeter(), **kw}),
    "SimulatedMeter": SimulatedMeter,
    "CpuTimeMeter": CpuTimeMeter,
    "RaplMeter": _rapl,
    "TrialEnergy": lambda **kw: TrialEnergy(**{"trial": _trial(), **kw}),
    "weighted_objective": lambda **kw: weighted_objective(**{"values": [0.5, 0.7], **kw}),
    "explore_lr": _explore,
    "optimize_synchronous": _synchronous,
    "SM2Objective.make_pruner": lambda **kw: _objective().make_pruner(**kw),
}

UNIT = bad_real(0.0, 1.0)
ARGUMENTS: list[tuple[str, str, Bad]] = [
    ("SuccessiveHalvingEnergyPruner", "min_resource", bad_int(1, also=("AUTO",))),
    ("SuccessiveHalvingEnergyPruner", "reduction_factor", bad_int(2)),
    ("SuccessiveHalvingEnergyPruner", "min_early_stopping_rate", bad_int(0)),
    ("SuccessiveHalvingEnergyPruner", "bootstrap_count", bad_int(0)),
    ("SuccessiveHalvingEnergyPruner", "alpha", UNIT),
    ("SuccessiveHalvingEnergyPruner", "beta", UNIT),
    ("SuccessiveHalvingEnergyPruner", "lr_scale", bad_choice(("log", "linear"))),
    (
        "SuccessiveHalvingEnergyPruner",
        "rung_steps",
        Bad([5, 0.5, "abc", True, [], [-1], [1, 1], [3, 2], [1.5], [True], [math.nan]]),
    ),
    ("SM2Objective", "build_model", not_callable()),
    ("SM2Objective", "loss_fn", not_callable()),
    ("SM2Objective", "metric", not_callable()),
    ("SM2Objective", "optimizer_factory", not_callable(optional=True)),
    ("SM2Objective", "train_data", Bad([None, "abc", 5, (1, 2), [], (torch.ones(3),)])),
    (
        "SM2Objective",
        "batch_sizes",
        Bad([None, "abc", 5, 8.0, [], [0], [8, 8], [8.0], [True], [np.float64(8)], [-1], [1000]]),
    ),
    ("SM2Objective", "lr_min", bad_real(0.0, low_inclusive=False, optional=True)),
    ("SM2Objective", "lr_max", bad_real(0.0, low_inclusive=False, optional=True)),
    ("SM2Objective", "n_lrs", bad_int(3)),
    ("SM2Objective", "explore_fraction", bad_real(0.0, 1.0, low_inclusive=False)),
    ("SM2Objective", "epochs_per_rung", bad_int(1)),
    ("SM2Objective", "final_epochs", bad_int(0)),
    ("SM2Objective", "seed", bad_int(0)),
    ("SM2Objective", "meter", not_callable(optional=True)),
    ("SM2Objective", "metric_name", Bad(["", None, 5, True, b"acc"])),
    ("SM2Objective", "device", Bad([5, True, "gpu0", "", "cuda:99", 1.5])),
    ("SM2Objective", "checkpoint_dir", Bad([5, True, "", 1.5, b"x"])),
    ("SM2Objective", "callbacks", Bad([5, "abc", [5], print])),
    ("EnergyTracker", "meter", not_callable(optional=True)),
    ("EnergyTracker", "sync_cuda", Bad([None, "yes", 1, 0.0, np.float64(1.0)])),
    ("SimulatedMeter", "power_w", bad_real(0.0)),
    ("SimulatedMeter", "clock", not_callable()),
    ("CpuTimeMeter", "watts_per_core", bad_real(0.0, low_inclusive=False)),
    ("RaplMeter", "root", Bad([5, True, None, 1.5])),
    ("RaplMeter", "clock", not_callable()),
    ("TrialEnergy", "trial", not_callable()),
    ("TrialEnergy", "tracker", not_callable(optional=True)),
    # A value may be NaN or infinite (it scores 0); energies and learning rates may not.
    ("weighted_objective", "values", bad_numbers(Bad(_junk(optional=True)), optional=False)),
    ("weighted_objective", "energies", bad_numbers(bad_real(0.0), optional=True)),
    ("weighted_objective", "lrs", bad_numbers(bad_real(0.0, low_inclusive=False), optional=True)),
    ("weighted_objective", "alpha", UNIT),
    ("weighted_objective", "beta", UNIT),
    ("weighted_objective", "direction", bad_choice(("maximize", "minimize"))),
    ("weighted_objective", "lr_scale", bad_choice(("log", "linear"))),
    ("explore_lr", "loss_fn", not_callable()),
    ("explore_lr", "lr_min", bad_real(0.0, low_inclusive=False, optional=True)),
    ("explore_lr", "lr_max", bad_real(0.0, low_inclusive=False, optional=True)),
    ("explore_lr", "n_lrs", bad_int(3)),
    ("explore_lr", "model", not_callable()),
    ("explore_lr", "batches", Bad([None, 5, 1.5, True])),
    ("explore_lr", "optimizer_factory", not_callable(optional=True)),
    ("explore_lr", "optimizer", Bad([5, "sgd", True, object()])),
    ("explore_lr", "tracker", not_callable(optional=True)),
    # Bad in what they hold or return, found before torch or Python would fail on them.
    ("explore_lr", "model", Bad([nn.ReLU(), nn.Linear(4, 2).requires_grad_(False)])),
    ("explore_lr", "loss_fn", Bad([lambda out, y: 1.0, lambda out, y: _per_sample(out, y)])),
    ("explore_lr", "batches", Bad([_batches(rows=0), _batches(targets=6)])),
    ("explore_lr", "optimizer", Bad([torch.optim.SGD(nn.Linear(4, 2).parameters(), lr=0.1)])),
    ("explore_lr", "device", Bad([5, True, "gpu0", "", "cuda:99", 1.5])),
    ("optimize_synchronous", "study", not_callable()),
    ("optimize_synchronous", "objective", not_callable()),
    # The objective has two batch sizes: a third configuration would train one twice.
    ("optimize_synchronous", "n_trials", bad_int_in(1, 2, optional=True)),
    ("SM2Objective.make_pruner", "rung_steps", Bad([None, [1], (1, 3, 5), [2, 4], "1,3"])),
    ("optimize_synchronous", "enqueue_batch_sizes", Bad([None, 1, 0, "yes", 1.0, np.bool_(True)])),
]


def _cases(cases: list[tuple[Any, ...]], ids: list[str]) -> list[Any]:
    return [pytest.param(*case, id=id_) for case, id_ in zip(cases, ids, strict=True)]


@pytest.fixture(autouse=True, scope="module")
def _quiet() -> Iterator[None]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield


@pytest.mark.parametrize(
    ("target", "argument", "values"), _cases(ARGUMENTS, [f"{t}-{a}" for t, a, _ in ARGUMENTS])
)
def test_a_bad_value_is_one_value_error_naming_the_argument(
    target: str, argument: str, values: Bad
) -> None:
    def refused(value: Any) -> None:
        with pytest.raises(ValueError) as error:
            CALLS[target](**{argument: value})
        assert f"`{argument}`" in str(error.value), str(error.value)

    _property(values, refused)


def _property(values: Bad, check: Callable[[Any], None]) -> None:
    """``check`` every example, then values drawn at random."""
    for value in values.examples:
        try:
            check(value)
        except BaseException as failure:
            failure.add_note(f"bad value: {value!r}")
            raise
    EXAMPLES(given(values.strategy)(check))()


# -- report(): refused before anything is written ----------------------------------------------

REPORT_ARGUMENTS: dict[str, Bad] = {
    "trial": Bad([None, "trial", 5, object(), _trial().study, optuna.trial.create_trial(value=1)]),
    "value": Bad([*JUNK, *BOOLS, None]),
    # Optuna's database keeps a step as a 32-bit integer.
    "step": bad_int_in(0, 2**31 - 1),
    "energy_per_epoch_j": bad_real(0.0, optional=True),
    "stable_lr": bad_real(0.0, low_inclusive=False, optional=True),
}
GOOD_REPORT = {"value": 0.5, "step": 3, "energy_per_epoch_j": 12.0, "stable_lr": 0.1}


@pytest.mark.parametrize(
    "argument", _cases([(a,) for a in REPORT_ARGUMENTS], [f"report-{a}" for a in REPORT_ARGUMENTS])
)
def test_a_refused_report_leaves_the_sqlite_storage_as_it_was(
    tmp_path: Path, argument: str
) -> None:
    path = tmp_path / "study.db"
    url = f"sqlite:///{path}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    trial = study.ask()
    report(trial, 0.25, 0, energy_per_epoch_j=10.0, stable_lr=0.2)

    def refused(value: Any) -> None:
        before_bytes, before = fingerprint(path), study.trials
        with pytest.raises(ValueError) as error:
            report(**{"trial": trial, **GOOD_REPORT, argument: value})
        assert f"`{argument}`" in str(error.value), str(error.value)
        assert fingerprint(path) == before_bytes
        after = optuna.load_study(study_name="s", storage=url).trials
        assert [(t.user_attrs, t.intermediate_values, t.state) for t in after] == [
            (t.user_attrs, t.intermediate_values, t.state) for t in before
        ]

    _property(REPORT_ARGUMENTS[argument], refused)


# -- numpy numbers of a good value are accepted ---------------------------------------------------

GOOD_NUMPY: list[tuple[str, dict[str, Any]]] = [
    ("SuccessiveHalvingEnergyPruner", {"alpha": np.float32(0.5), "beta": np.float16(0.25)}),
    ("SuccessiveHalvingEnergyPruner", {"reduction_factor": np.int32(3)}),
    ("SuccessiveHalvingEnergyPruner", {"rung_steps": np.array([1, 3])}),
    ("SM2Objective", {"lr_min": np.float32(1e-3), "lr_max": np.float64(0.5)}),
    ("SM2Objective", {"n_lrs": np.int16(6), "epochs_per_rung": np.int64(2)}),
    ("SM2Objective", {"batch_sizes": np.array([8, 16]), "seed": np.uint8(3)}),
    ("SimulatedMeter", {"power_w": np.float32(50.0)}),
    ("CpuTimeMeter", {"watts_per_core": np.float32(6.5)}),
    ("weighted_objective", {"alpha": np.float32(0.5), "energies": np.array([1.0, 2.0])}),
    ("explore_lr", {"lr_min": np.float32(1e-3), "n_lrs": np.int64(3)}),
    ("optimize_synchronous", {"n_trials": np.int64(2)}),
]


@pytest.mark.parametrize(
    ("target", "arguments"),
    _cases(GOOD_NUMPY, [f"numpy-{t}-{'-'.join(a)}" for t, a in GOOD_NUMPY]),
)
def test_numpy_numbers_of_a_good_value_are_accepted(
    target: str, arguments: dict[str, Any]
) -> None:
    CALLS[target](**arguments)
