from __future__ import annotations

from collections.abc import Iterator

import optuna
import pytest
from hypothesis import HealthCheck, settings

# These machines are shared and noisy: no property test may fail on wall-clock time (neither an
# example's deadline nor the health check that times how fast examples are drawn).
settings.register_profile("sm2", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sm2")


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures(...)``): on a
    shared, loaded machine the tiny models train many times faster; restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
