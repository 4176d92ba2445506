"""The pruner's settings, as the study stores them (the study user attr ``sm2.pruner``)."""

from __future__ import annotations

import importlib.metadata
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from optuna_sm2 import attrs as _attrs
from optuna_sm2._validation import (
    check_choice,
    check_int,
    check_real,
    check_unit_interval,
    is_int,
)
from optuna_sm2.pruners._ranking import (
    PERFORMANCE_TOLERANCE,
    RANKINGS,
    Ranking,
    RungRanking,
    rank_rung,
)
from optuna_sm2.pruners._weighted_objective import LR_SCALES, Direction, LRScale

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from optuna_sm2.pruners._records import RungRecord


def library_version() -> str:
    """The installed version of optuna-sm2, ``"unknown"`` when it is not installed."""
    try:
        return importlib.metadata.version("optuna-sm2")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class PrunerSettings:
    """What decides a study's rungs: the arguments of ``SuccessiveHalvingEnergyPruner``.

    The pruner stores them as JSON in the study user attr ``sm2.pruner`` the first time it
    writes to a study (:meth:`to_json`); :func:`stored_pruner_settings` reads them back. The
    defaults are the pruner's. ``version`` is the optuna-sm2 version that stored them and is
    not a setting: :meth:`differences` ignores it. Settings stored before ``ranking`` existed
    lack it and read as ``"paper"``, the rule that decided them.

    Example:
        >>> from optuna_sm2.pruners import PrunerSettings
        >>> ours, theirs = PrunerSettings(), PrunerSettings(alpha=1.0)
        >>> ours.differences(theirs)
        ('alpha 0.75 against 1',)
        >>> PrunerSettings.from_json(ours.to_json()) == ours
        True
    """

    alpha: float = 0.75
    beta: float = 0.5
    lr_scale: LRScale = "log"
    reduction_factor: int = 2
    min_resource: int | Literal["auto"] = 1
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0
    rung_steps: tuple[int, ...] | None = None
    ranking: Ranking = "robust"
    performance_tolerance: float = PERFORMANCE_TOLERANCE
    version: str = "unknown"

    def to_json(self) -> dict[str, Any]:
        """The settings as a dict of JSON values."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["rung_steps"] = None if self.rung_steps is None else list(self.rung_steps)
        return data

    @classmethod
    def from_json(cls, data: Any) -> PrunerSettings:
        """The settings stored as ``data``; keys it lacks take the defaults, unknown keys are
        ignored.

        Raises:
            ValueError: ``data`` is not a JSON object, or a setting is out of its range (the
                message names it).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"`{_attrs.PRUNER}` must be a JSON object, got {data!r}.")
        known = {f.name for f in fields(cls)}
        settings = cls(**{"ranking": "paper", **{k: v for k, v in data.items() if k in known}})
        return settings.checked()

    def checked(self) -> PrunerSettings:
        """These settings with plain Python types; ``ValueError`` naming one out of range."""
        min_resource = self.min_resource
        if min_resource != "auto":
            if not (is_int(min_resource) and min_resource >= 1):
                raise ValueError(
                    f"`min_resource` must be 'auto' or an integer >= 1, got {min_resource!r}."
                )
            min_resource = int(min_resource)
        steps = self.rung_steps
        if steps is not None:
            if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Iterable):
                raise ValueError(f"`rung_steps` must be a list of integers, got {steps!r}.")
            steps = tuple(steps)
            if not steps or not all(is_int(s) and s >= 0 for s in steps):
                raise ValueError(
                    f"`rung_steps` must be a non-empty list of integers >= 0, got {list(steps)}."
                )
            if any(a >= b for a, b in itertools.pairwise(steps)):
                raise ValueError(f"`rung_steps` must be strictly increasing, got {list(steps)}.")
            steps = tuple(int(s) for s in steps)
        return replace(
            self,
            alpha=check_unit_interval("alpha", self.alpha),
            beta=check_unit_interval("beta", self.beta),
            lr_scale=check_choice("lr_scale", self.lr_scale, LR_SCALES),
            reduction_factor=check_int("reduction_factor", self.reduction_factor, minimum=2),
            min_resource=min_resource,
            min_early_stopping_rate=check_int(
                "min_early_stopping_rate", self.min_early_stopping_rate, minimum=0
            ),
            bootstrap_count=check_int("bootstrap_count", self.bootstrap_count, minimum=0),
            rung_steps=steps,
            ranking=check_choice("ranking", self.ranking, RANKINGS),
            performance_tolerance=check_real(
                "performance_tolerance",
                self.performance_tolerance,
                low=0.0,
                high=1.0,
                high_inclusive=False,
            ),
            version=str(self.version),
        )

    def rank(self, records: Sequence[RungRecord], *, direction: Direction) -> RungRanking:
        """:func:`~optuna_sm2.pruners.rank_rung` over ``records`` with these settings (every
        argument checked)."""
        return rank_rung(records, direction=direction, **self.ranking_arguments())

    def ranking_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~optuna_sm2.pruners.rank_rung` these settings
        give (all but ``records`` and ``direction``)."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "lr_scale": self.lr_scale,
            "reduction_factor": self.reduction_factor,
            "bootstrap_count": self.bootstrap_count,
            "ranking": self.ranking,
            "performance_tolerance": self.performance_tolerance,
        }

    def differences(self, other: PrunerSettings) -> tuple[str, ...]:
        """Each setting that differs, as ``"<name> <ours> against <other's>"``; the version
        is not compared."""
        return tuple(
            f"{f.name} {_text(getattr(self, f.name))} against {_text(getattr(other, f.name))}"
            for f in fields(self)
            if f.name != "version" and getattr(self, f.name) != getattr(other, f.name)
        )

    def describe(self) -> str:
        """The settings in one line, e.g. ``alpha 0.75, beta 0.5, lr_scale log, ...``
        (``rung_steps none``: the geometric schedule)."""
        return ", ".join(
            f"{f.name} {_text(getattr(self, f.name))}" for f in fields(self) if f.name != "version"
        )


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def stored_pruner_settings(study: optuna.Study) -> PrunerSettings | None:
    """The settings the study's pruner stored (``sm2.pruner``), or ``None`` if none did.

    A process that runs an SM² study with its own arguments can compare them with what the
    study was decided by, and refuse to mix both:

    Example:
        >>> import optuna
        >>> from optuna_sm2 import SuccessiveHalvingEnergyPruner, report
        >>> from optuna_sm2.pruners import stored_pruner_settings
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(pruner=SuccessiveHalvingEnergyPruner(alpha=0.5))
        >>> stored_pruner_settings(study) is None  # nothing decided yet
        True
        >>> trial = study.ask()
        >>> report(trial, 1.0, 1, energy_per_epoch_j=5.0, stable_lr=0.1)
        >>> trial.should_prune()
        False
        >>> stored = stored_pruner_settings(study)
        >>> stored.alpha, stored.differences(SuccessiveHalvingEnergyPruner().settings)
        (0.5, ('alpha 0.5 against 0.75',))

    Raises:
        ValueError: the study holds ``sm2.pruner`` but it cannot be read (the message says
            which setting is wrong).
    """
    data = study.user_attrs.get(_attrs.PRUNER)
    return None if data is None else PrunerSettings.from_json(data)
