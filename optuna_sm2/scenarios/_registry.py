"""The scenarios by name: :data:`SCENARIOS` and :func:`load_scenario`."""

from __future__ import annotations

from collections.abc import Callable

from optuna_sm2.scenarios._base import Scenario, check_budget
from optuna_sm2.scenarios._household import household
from optuna_sm2.scenarios._text import text
from optuna_sm2.scenarios._vision import vision

SCENARIOS: dict[str, Callable[..., Scenario]] = {
    "vision": vision,
    "household": household,
    "text": text,
}
"""Scenario name -> ``factory(budget="small", seed=0)`` returning the :class:`Scenario`."""


def load_scenario(name: str, budget: str = "small", seed: int = 0) -> Scenario:
    """The scenario ``name`` at ``budget`` (``tiny``, ``small`` or ``paper``).

    Raises:
        ValueError: unknown name or budget.
        ScenarioDataMissing: the package that ships its data is not installed.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    return SCENARIOS[name](check_budget(budget), seed=seed)
