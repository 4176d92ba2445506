"""Every ``>>>`` example in the package runs, from this one place.

A module is collected when its source holds a ``>>>`` line; a module added with examples is
collected without editing this file.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "optuna_sm2"
MODULES = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    for path in PACKAGE.rglob("*.py")
    if any(line.lstrip().startswith(">>> ") for line in path.read_text("utf-8").splitlines())
)


def test_the_package_has_examples() -> None:
    assert len(MODULES) >= 10, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, raise_on_error=True, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has >>> lines that doctest does not see"
    assert result.failed == 0
