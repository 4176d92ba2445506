"""The study a run joins: found without creating anything, checked, then created or loaded.

``demo`` and ``worker`` run an :class:`~optuna_sm2.SM2Objective` in a study that may already
exist. Before anything is created or deleted they read it (:func:`find_study`) and take its
settings: an option the user gave must equal the study's value (else one line naming both), an
option left out takes the study's value (:func:`resolve`), and what no option sets (the batch
sizes, the metric, the LR range, the direction) must match (:func:`check_schedule`). A study with
trials but no ``sm2.schedule`` is not SM²'s and is never joined; ``sm2.schedule`` is never
overwritten.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import optuna
from optuna.study import StudyDirection

from optuna_sm2 import attrs as _attrs
from optuna_sm2.cli._common import (
    CLIError,
    holds_studies,
    open_storage,
    storage_failure,
    storage_failures,
    study_names,
)
from optuna_sm2.cli._options import PAPER_PRUNER
from optuna_sm2.pruners import PrunerSettings

if TYPE_CHECKING:
    from optuna_sm2.pruners import SuccessiveHalvingEnergyPruner
    from optuna_sm2.training import SM2Objective

Direction = Literal["minimize", "maximize"]

FLAGS = {
    "epochs_per_rung": "--epochs-per-rung",
    "final_epochs": "--final-epochs",
    "n_lrs": "--n-lrs",
    "alpha": "--alpha",
    "beta": "--beta",
}
"""The settings an option sets, by their name in ``sm2.schedule`` / ``sm2.pruner``."""

SCHEDULE_SETTINGS = ("epochs_per_rung", "final_epochs", "n_lrs")
PRUNER_SETTINGS = ("alpha", "beta")
_ADOPTED_PRUNER_SETTINGS = (
    "lr_scale",
    "reduction_factor",
    "bootstrap_count",
    "ranking",
    "performance_tolerance",
)
"""Settings of a stored pruner that no option sets; a joining run's pruner takes them over."""


@dataclass(frozen=True)
class StoredStudy:
    """What a run needs to know of an existing study before it joins it."""

    name: str
    url: str
    direction: Direction | None
    """``None`` for a multi-objective study."""
    n_trials: int
    schedule: dict[str, Any] | None
    pruner: PrunerSettings | None
    """``sm2.pruner`` (absent or unreadable: ``None``)."""

    @property
    def where(self) -> str:
        return f"study {self.name!r} in {self.url}"

    def stored(self) -> dict[str, Any]:
        """The study's value of each setting an option sets, where it has one."""
        schedule = self.schedule or {}
        values = {k: schedule[k] for k in SCHEDULE_SETTINGS if _is_int(schedule.get(k))}
        if self.pruner is not None:
            values.update({k: getattr(self.pruner, k) for k in PRUNER_SETTINGS})
        return values


@dataclass(frozen=True)
class Run:
    """What a ``demo`` or ``worker`` run will do, decided before anything is written."""

    stored: StoredStudy | None
    """The study found under the run's name, if any."""
    joined: StoredStudy | None
    """The study the run joins: the one found, unless ``--fresh`` replaces it."""
    settings: dict[str, Any]
    objective: SM2Objective
    pruner: SuccessiveHalvingEnergyPruner


OTHER_STUDY = "choose another --study"


def plan_run(
    url: str,
    name: str,
    given: Mapping[str, Any],
    build: Callable[..., SM2Objective],
    direction: Direction,
    what: str,
    keep: str,
    *,
    fresh: bool = False,
) -> Run:
    """Read the study ``name`` (creating nothing), check that the run may join it, and build the
    run's objective and pruner with its settings (:func:`resolve`).

    Args:
        url, name: The storage and the study.
        given: The options given, by setting name (``None`` when left out).
        build: ``build(**schedule_settings)`` returns the run's objective.
        direction, what: The run's direction, and how messages name the run.
        keep: What a message on a differing option tells the user to do.
        fresh: The study found is to be replaced (``demo --fresh``): it must be SM²'s, and is
            not joined.

    Raises:
        CLIError: the storage fails, or the study cannot be joined; one line.
    """
    stored = find_study(url, name)
    if stored is not None:
        check_sm2(stored, OTHER_STUDY)
    joined = None if fresh else stored
    if joined is not None:
        check_direction(joined, direction, what, OTHER_STUDY)
    settings = resolve(given, joined, keep, PAPER_PRUNER)
    objective = build(**{k: settings[k] for k in SCHEDULE_SETTINGS if settings[k] is not None})
    check_schedule(joined, objective, what, OTHER_STUDY)
    pruner = make_pruner(objective, settings, joined)
    return Run(stored, joined, settings, objective, pruner)


def find_study(url: str, name: str) -> StoredStudy | None:
    """The study ``name`` in the storage ``url``, or ``None``; creates nothing.

    Raises:
        CLIError: the storage cannot be reached or read, or its ``sm2.schedule`` is not a
            mapping; one line.
    """
    if not holds_studies(url):
        return None
    storage = open_storage(url)
    if name not in study_names(storage, url):
        return None
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        directions = study.directions
        n_trials = len(study.get_trials(deepcopy=False))
        user_attrs = study.user_attrs
    except storage_failures() as exc:
        raise storage_failure("read", url, exc) from exc
    schedule = user_attrs.get(_attrs.SCHEDULE)
    if schedule is not None and not isinstance(schedule, Mapping):
        raise CLIError(
            f"study {name!r} in {url} has a malformed {_attrs.SCHEDULE} ({schedule!r}); "
            "choose another --study"
        )
    direction: Direction | None = None
    if len(directions) == 1:
        direction = "maximize" if directions[0] == StudyDirection.MAXIMIZE else "minimize"
    return StoredStudy(
        name=name,
        url=url,
        direction=direction,
        n_trials=n_trials,
        schedule=None if schedule is None else dict(schedule),
        pruner=read_pruner_settings(user_attrs.get(_attrs.PRUNER)),
    )


def read_pruner_settings(value: Any) -> PrunerSettings | None:
    """The settings in a stored ``sm2.pruner``, read as the pruner and the report read them
    (:meth:`PrunerSettings.from_json <optuna_sm2.pruners.PrunerSettings.from_json>`); ``None``
    when there is none or it cannot be read, where they raise: a run then joins with its own
    options, and its pruner warns that the stored settings are unreadable and leaves them."""
    if value is None:
        return None
    try:
        return PrunerSettings.from_json(value)
    except ValueError:
        return None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_sm2(stored: StoredStudy, hint: str) -> None:
    """Refuse a study that is not SM²'s: several objectives, or trials but no schedule."""
    if stored.direction is None:
        raise CLIError(f"{stored.where} has several objectives; SM² needs one: {hint}")
    if stored.schedule is None and stored.n_trials > 0:
        raise CLIError(
            f"{stored.where} is not an SM² study: it holds {stored.n_trials} trials and no "
            f"{_attrs.SCHEDULE}: {hint}"
        )


def check_direction(stored: StoredStudy, direction: Direction, what: str, hint: str) -> None:
    """Refuse a study whose direction is not ``direction`` (``what`` names the run)."""
    if stored.direction != direction:
        raise CLIError(
            f"{stored.where} is set to {stored.direction}; {what} needs {direction}: {hint}"
        )


def resolve(
    given: Mapping[str, Any],
    stored: StoredStudy | None,
    hint: str,
    defaults: Mapping[str, Any],
) -> dict[str, Any]:
    """The settings of the run: each one given, else the stored study's, else its default in
    ``defaults``, else ``None`` (the objective's own default applies).

    ``given`` maps the names of :data:`FLAGS` to the option's value (``None`` when left out).

    Raises:
        CLIError: a given value differs from the study's; one line naming both.
    """
    known = stored.stored() if stored is not None else {}
    conflicts = [
        f"{FLAGS[k]} {_show(v)} (the study's {k} is {_show(known[k])})"
        for k, v in given.items()
        if v is not None and k in known and v != known[k]
    ]
    if conflicts:
        assert stored is not None
        raise CLIError(f"{stored.where} was made otherwise: {'; '.join(conflicts)}: {hint}")
    return {k: v if v is not None else known.get(k, defaults.get(k)) for k, v in given.items()}


def unchecked(given: Mapping[str, Any], stored: StoredStudy | None) -> list[str]:
    """The options given that cannot be checked against a study with trials, which does not
    store that setting (``sm2.pruner`` is written by the pruner at its first decision)."""
    if stored is None or stored.n_trials == 0:
        return []
    known = stored.stored()
    return [FLAGS[k] for k, v in given.items() if v is not None and k not in known]


def check_schedule(
    stored: StoredStudy | None, objective: SM2Objective, what: str, hint: str
) -> None:
    """Refuse a study whose ``sm2.schedule`` differs from the objective's (``what`` names it)."""
    if stored is None or stored.schedule is None:
        return
    ours = objective_schedule(objective)
    differs = [
        f"{k} {_show(stored.schedule.get(k))} there, {_show(ours.get(k))} here"
        for k in sorted(set(ours) | set(stored.schedule))
        if stored.schedule.get(k) != ours.get(k)
    ]
    if differs:
        raise CLIError(
            f"{stored.where} has another {_attrs.SCHEDULE} than {what}: {'; '.join(differs)}: "
            f"{hint}"
        )


def make_pruner(
    objective: SM2Objective, settings: Mapping[str, Any], stored: StoredStudy | None
) -> SuccessiveHalvingEnergyPruner:
    """The objective's pruner with the run's α and β and the stored pruner's other settings,
    so that every process of a study decides alike."""
    adopted: dict[str, Any] = {}
    if stored is not None and stored.pruner is not None:
        steps = stored.pruner.rung_steps
        if steps is None or list(steps) != objective.rung_steps:
            raise CLIError(
                f"{stored.where} has a pruner deciding at steps "
                f"{None if steps is None else list(steps)} ({_attrs.PRUNER}); this run's "
                f"objective reaches its rungs at {objective.rung_steps}: choose another --study"
            )
        adopted = {k: getattr(stored.pruner, k) for k in _ADOPTED_PRUNER_SETTINGS}
    return objective.make_pruner(alpha=settings["alpha"], beta=settings["beta"], **adopted)


def objective_schedule(objective: SM2Objective) -> dict[str, Any]:
    """What ``objective`` stores as ``sm2.schedule``."""
    return objective.schedule_attr()


def create_study(
    url: str,
    storage: optuna.storages.BaseStorage,
    name: str,
    objective: SM2Objective,
    pruner: SuccessiveHalvingEnergyPruner,
    direction: Direction,
) -> optuna.Study:
    """Create (or load) the study and mark it SM²'s at once, writing ``sm2.schedule`` if absent:
    until the first trial writes it, a study with a running trial and no schedule would be
    refused by a worker starting then."""
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=direction,
            pruner=pruner,
            load_if_exists=True,
        )
        if _attrs.SCHEDULE not in study.user_attrs:
            study.set_user_attr(_attrs.SCHEDULE, objective_schedule(objective))
    except storage_failures() as exc:
        raise storage_failure("write to", url, exc) from exc
    return study


def _show(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)
