"""``report``: Optuna's ``trial.report`` plus the energy attributes SM² ranks by."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from optuna_sm2 import attrs as _attrs

if TYPE_CHECKING:
    import optuna


def report(
    trial: optuna.trial.Trial,
    value: float,
    step: int,
    *,
    energy_per_epoch_j: float | None = None,
    stable_lr: float | None = None,
) -> None:
    """Report an intermediate value together with the energy and learning rate of the trial.

    The attributes are stored first, as the user attributes ``sm2.energy_per_epoch_j`` and
    ``sm2.stable_lr``, then ``trial.report(value, step)`` is called, so that a following
    ``trial.should_prune()`` ranks the trial with them. An attribute passed as ``None`` keeps
    its previous value.

    Args:
        trial: The running trial.
        value: The intermediate objective value, as for :meth:`optuna.trial.Trial.report`.
        step: The step (epoch), as for :meth:`optuna.trial.Trial.report`.
        energy_per_epoch_j: Energy of one full pass over the training data, in joules (>= 0).
        stable_lr: The largest stable learning rate found for the trial (> 0).

    Example:
        .. code-block:: python

            import optuna
            from optuna_sm2 import SuccessiveHalvingEnergyPruner, report

            def objective(trial):
                x = trial.suggest_float("x", -1.0, 1.0)
                for step in range(4):
                    report(trial, -x * x, step, energy_per_epoch_j=50.0 + x, stable_lr=0.1)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return -x * x

            study = optuna.create_study(
                direction="maximize", pruner=SuccessiveHalvingEnergyPruner()
            )
            study.optimize(objective, n_trials=10)
    """
    if energy_per_epoch_j is not None and not (
        math.isfinite(energy_per_epoch_j) and energy_per_epoch_j >= 0.0
    ):
        raise ValueError(
            f"`energy_per_epoch_j` must be a finite number >= 0 (joules), "
            f"got {energy_per_epoch_j!r}."
        )
    if stable_lr is not None and not (math.isfinite(stable_lr) and stable_lr > 0.0):
        raise ValueError(f"`stable_lr` must be a finite number > 0, got {stable_lr!r}.")
    if energy_per_epoch_j is not None:
        trial.set_user_attr(_attrs.ENERGY_PER_EPOCH_J, float(energy_per_epoch_j))
    if stable_lr is not None:
        trial.set_user_attr(_attrs.STABLE_LR, float(stable_lr))
    trial.report(value, step)
