"""``report``: Optuna's ``trial.report`` plus the energy attributes SM² ranks by."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna_sm2 import _compat
from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2._validation import check_int, check_real, is_real

if TYPE_CHECKING:
    import optuna


MAX_STEP = 2**31 - 1
"""The largest step every storage keeps (Optuna's database column is a 32-bit ``INTEGER`` on
PostgreSQL and MySQL)."""


def report(
    trial: optuna.trial.Trial,
    value: float,
    step: int,
    *,
    energy_per_epoch_j: float | None = None,
    stable_lr: float | None = None,
    energy_per_epoch_spread: float | None = None,
) -> None:
    """Report an intermediate value together with the energy and learning rate of the trial.

    Every argument is checked first; nothing is written unless all pass. Then the attributes
    are stored, as the user attributes ``sm2.energy_per_epoch_j``,
    ``sm2.energy_per_epoch_spread`` and ``sm2.stable_lr`` (each only when the trial does not
    hold that value already), and ``trial.report(value, step)`` is called, so that a
    following ``trial.should_prune()`` ranks the trial with them. An attribute passed as
    ``None`` keeps its previous value (``TrialEnergy`` stores the spread of its figure
    itself).

    A step the trial has already reported is Optuna's case: ``trial.report`` ignores the value
    (with Optuna's warning), and the stored energy, spread and learning rate are left as they
    were too.

    Args:
        trial: The running trial (an ``optuna.trial.Trial``, or a ``FixedTrial``).
        value: The intermediate objective value, a number as for
            :meth:`optuna.trial.Trial.report` (NaN and infinities are reported; the pruner
            prunes a trial whose value at a rung is not finite). Booleans are refused.
        step: The step (epoch), an integer from 0 to ``2**31 - 1`` (what every storage keeps).
        energy_per_epoch_j: Energy of one full pass over the training data, in joules (>= 0).
        stable_lr: The largest stable learning rate found for the trial (> 0).
        energy_per_epoch_spread: How much the figures behind ``energy_per_epoch_j`` varied,
            as a relative half-range ``(max - min) / (2 * energy_per_epoch_j)`` (>= 0); needs
            ``energy_per_epoch_j``. The dashboard draws it as error bars.

    Raises:
        ValueError: an argument is not what is listed above (the message names it); nothing
            was written.

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
    import optuna

    if not isinstance(trial, optuna.trial.BaseTrial) or isinstance(
        trial, optuna.trial.FrozenTrial
    ):
        raise ValueError(
            f"`trial` must be the running optuna.trial.Trial (the objective's argument), got "
            f"{trial!r}."
        )
    if not is_real(value):
        raise ValueError(f"`value` must be a number (NaN and infinities allowed), got {value!r}.")
    step = check_int("step", step, minimum=0, maximum=MAX_STEP)
    energy = _optional("energy_per_epoch_j", energy_per_epoch_j, low=0.0, low_inclusive=True)
    lr = _optional("stable_lr", stable_lr, low=0.0, low_inclusive=False)
    spread = _optional(
        "energy_per_epoch_spread", energy_per_epoch_spread, low=0.0, low_inclusive=True
    )
    if spread is not None and energy is None:
        raise ValueError(
            "`energy_per_epoch_spread` describes `energy_per_epoch_j`: pass both, got a spread "
            f"of {spread!r} without an energy."
        )
    study = getattr(trial, "study", None)  # a FixedTrial has none
    if study is not None and len(study.directions) > 1:
        raise ValueError(
            "report() needs a single-objective study: Optuna cannot report intermediate "
            f"values in a study with {len(study.directions)} directions."
        )
    if step not in _compat.reported_steps(trial):
        write_figures(trial_attrs.TrialWriter(trial), energy, spread, lr)
    trial.report(float(value), step)


def write_figures(
    writer: trial_attrs.TrialWriter,
    energy_per_epoch_j: float | None,
    energy_per_epoch_spread: float | None,
    stable_lr: float | None,
) -> None:
    """Store the figures :func:`report` stores for a step, those not ``None``, with
    ``writer`` (without reporting: SM²'s loop stores a retry's own figures at a step whose
    value it inherited)."""
    for attr, figure in (
        (trial_attrs.ENERGY_PER_EPOCH_J, energy_per_epoch_j),
        (trial_attrs.ENERGY_PER_EPOCH_SPREAD, energy_per_epoch_spread),
        (trial_attrs.STABLE_LR, stable_lr),
    ):
        if figure is not None:
            writer.write(attr, figure)


def _optional(name: str, value: Any, *, low: float, low_inclusive: bool) -> float | None:
    """``value`` as a finite float above ``low``, or ``None``; ``ValueError`` naming ``name``."""
    if value is None:
        return None
    return check_real(name, value, low=low, low_inclusive=low_inclusive)
