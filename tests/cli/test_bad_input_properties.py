"""Property: any bad command-line value of demo, worker or bench is one line naming the option,
exit code 2, and the storage is left as it was (or not created).

The accepted ranges below are the commands' documented contract, written out here rather than
read from the code under test.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optuna_sm2.cli._common import open_storage
from tests.support.cli import assert_refused, demo_study, fingerprint, run_cli

INT_RANGES: dict[str, tuple[int, int | None]] = {
    "--epochs-per-rung": (1, 1000),
    "--final-epochs": (0, 10000),
    "--n-lrs": (3, 1000),
    "--n-trials": (1, None),
    "--heartbeat-interval": (1, 86400),
    "--seed": (0, 2**32 - 1),
    "--seeds": (1, 100),
    "--threads": (1, 1024),
}
REAL_RANGES = {"--alpha": (0.0, 1.0), "--beta": (0.0, 1.0)}
CHOICES = {
    "--budget": ("tiny", "small", "paper"),
    "--scenario": ("demo", "vision", "household", "text"),
}
NUMBERS = {
    "demo": ("--epochs-per-rung", "--final-epochs", "--n-lrs", "--alpha", "--beta"),
    "worker": (
        *("--epochs-per-rung", "--final-epochs", "--n-lrs", "--alpha", "--beta"),
        *("--n-trials", "--heartbeat-interval"),
    ),
    "bench": ("--seed", "--seeds", "--threads"),
}
TEXTS = {
    "demo": ("--study", "--storage"),
    "worker": ("--study", "--storage", "--gpu", "--checkpoint-dir"),
    "bench": ("--out", "--device", "--replay"),
}


def _parses(convert: type, text: str) -> bool:
    try:
        convert(text)
    except ValueError:
        return False
    return True


def _bad_int(flag: str) -> st.SearchStrategy[str]:
    low, high = INT_RANGES[flag]
    outside = st.integers(max_value=low - 1)
    if high is not None:
        outside = outside | st.integers(min_value=high + 1)
    return st.one_of(
        outside.map(str),
        st.floats(allow_nan=True).map(repr),  # 1.0, 1e+300, nan: not integers
        st.text().filter(lambda t: not _parses(int, t)),
    )


def _bad_real(flag: str) -> st.SearchStrategy[str]:
    low, high = REAL_RANGES[flag]
    outside = st.floats(max_value=low, exclude_max=True) | st.floats(
        min_value=high, exclude_min=True
    )
    return st.one_of(
        outside.map(repr),
        st.sampled_from(["nan", "inf", "-inf", "1e999"]),
        st.text().filter(lambda t: not _parses(float, t) or not math.isfinite(float(t))),
    )


def _bad_text(flag: str) -> st.SearchStrategy[str]:
    empty = st.text(alphabet=" \t\n", max_size=3)
    with_nul = st.tuples(st.text(), st.text()).map(lambda ab: f"{ab[0]}\x00{ab[1]}")
    too_long = st.text(min_size=513, max_size=600).filter(lambda t: "\x00" not in t and t.strip())
    return empty | with_nul | too_long if flag == "--study" else empty | with_nul


def _bad_value(command: str) -> st.SearchStrategy[tuple[str, str]]:
    """``(flag, bad text)`` for one option of ``command``."""
    options = [(f, _bad_int(f) if f in INT_RANGES else _bad_real(f)) for f in NUMBERS[command]]
    options += [(f, _bad_text(f)) for f in TEXTS[command]]
    if command in ("worker", "bench"):
        for flag, choices in CHOICES.items():
            if command == "bench" and flag == "--scenario":
                choices = ("vision", "household", "text", "all")
            options.append((flag, st.text().filter(lambda t, c=choices: t not in c)))
    if command == "bench":
        arms = ("vanilla", "alpha1", "sm2", "tpe_hyperband", "grid", "zeus_cost")
        options.append(
            (
                "--arms",
                st.text().filter(lambda t: not set(map(str.strip, t.split(","))) <= set(arms)),
            )
        )
    return st.one_of([strategy.map(lambda v, f=flag: (f, v)) for flag, strategy in options])


def _journal(path: Path) -> optuna.storages.BaseStorage:
    return open_storage(str(path), must_exist=False)


@pytest.fixture(scope="module")
def place() -> Iterator[Path]:
    """A folder holding a journal with an SM² study (whose bytes must never change)."""
    with tempfile.TemporaryDirectory() as folder:
        demo_study(_journal(Path(folder, "kept.log")), "kept", n_trials=2, epochs_per_rung=1)
        yield Path(folder)


def _argv(command: str, place: Path, flag: str, value: str) -> list[str]:
    base = {
        "demo": ["demo", "--storage", str(place / "kept.log"), "--study", "kept"],
        "worker": [
            *("worker", "--storage", str(place / "new.log"), "--study", "kept"),
            *("--scenario", "demo", "--n-trials", "1", "--checkpoint-dir", str(place / "c")),
        ],
        "bench": ["bench", "--out", str(place / "out")],
    }[command]
    return [*base, f"{flag}={value}"]


@pytest.mark.parametrize("command", ["demo", "worker", "bench"])
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_bad_value_is_one_line_and_changes_nothing(
    command: str, place: Path, data: st.DataObject
) -> None:
    flag, value = data.draw(_bad_value(command))
    kept = fingerprint(place / "kept.log")
    err = assert_refused(*run_cli(_argv(command, place, flag, value)), command)
    assert f"{flag}" in err
    assert fingerprint(place / "kept.log") == kept
    assert not (place / "new.log").exists()
    assert not (place / "out").exists() and not (place / "c").exists()


SCHEDULE = {"epochs_per_rung": 1, "final_epochs": 1, "n_lrs": 6}
DIFFERING = ("--epochs-per-rung", "--final-epochs", "--n-lrs", "--alpha")


@pytest.mark.parametrize("command", ["demo", "worker"])
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flag=st.sampled_from(DIFFERING),
    number=st.integers(min_value=3, max_value=40),
)
def test_a_value_other_than_the_studys_is_refused_and_changes_nothing(
    command: str, flag: str, number: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    place = tmp_path_factory.mktemp("joined")
    journal = place / "kept.log"
    pruner = {"alpha": 0.5, "beta": 0.5, "rung_steps": [1, 3, 5]}
    demo_study(_journal(journal), "kept", n_trials=1, pruner=pruner, **SCHEDULE)
    # Never the study's: 1 epoch per rung, 1 final epoch, 6 LRs, alpha 0.5.
    value = number / 41 if flag == "--alpha" else number + (flag == "--n-lrs") * 4
    kept = fingerprint(journal)
    argv = {
        "demo": ["demo", "--storage", str(journal), "--study", "kept"],
        "worker": [
            *("worker", "--storage", str(journal), "--study", "kept", "--scenario", "demo"),
            *("--n-trials", "1", "--checkpoint-dir", str(place / "c")),
        ],
    }[command]
    err = assert_refused(*run_cli([*argv, flag, str(value)]), command, flag)
    assert "the study's" in err
    assert fingerprint(journal) == kept
    assert not (place / "c").exists()
