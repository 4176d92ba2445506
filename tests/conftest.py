from __future__ import annotations

import optuna
import pytest
from hypothesis import settings

# These machines are shared and noisy: no property test may fail on wall-clock time.
settings.register_profile("sm2", deadline=None)
settings.load_profile("sm2")


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
