"""The state of one trial in training, and its checkpoint: saved at rungs, resumed by a retry.

A trial retried by ``RetryHeartbeatStaleTrialCallback`` looks along its ``retry_history`` for the
newest checkpoint that belongs to one of the trials it retries (same study, trial, start time and
batch size) and that loads into its model; anything else is ignored with a warning, and the trial
starts from scratch when nothing is left.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from optuna_sm2 import _compat
from optuna_sm2 import _validation as _check
from optuna_sm2.training._checkpoint import (
    CheckpointKey,
    checkpoint_file,
    ignore_checkpoint,
    legacy_study_directory,
    read_checkpoint,
    save_checkpoint,
    study_directory,
)

_logger = logging.getLogger(__name__)


@dataclass
class TrainingState:
    """Everything a checkpoint restores: the model, its optimizer, the LR and the progress."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    lr: float = 0.0
    next_step: int = 0
    epochs_trained: int = 0
    explorations: int = 0

    def adopt_lr(self, lr: float) -> None:
        """Train on at ``lr`` (the optimizer's every parameter group)."""
        self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def progress(self) -> dict[str, Any]:
        """The counters a checkpoint stores next to the state dicts."""
        return {
            "next_step": self.next_step,
            "lr": self.lr,
            "epochs_trained": self.epochs_trained,
            "explorations": self.explorations,
        }

    def restore(self, content: dict[str, Any], n_steps: int) -> str | None:
        """Take over a checkpoint's content; ``None`` when done, else why not (state unchanged).

        Args:
            content: What :func:`read_checkpoint` returned.
            n_steps: Steps of the schedule: a checkpoint cannot resume past them.
        """
        progress = content["progress"]
        if not isinstance(progress, dict):
            return "its progress is not a mapping"
        malformed = f"its progress is malformed: {progress!r}"
        counts: list[int] = []
        for name in ("next_step", "epochs_trained", "explorations"):
            count: Any = progress.get(name)
            if not _check.is_int(count) or count < 0:
                return malformed
            counts.append(int(count))
        lr = _check.finite_or_none(progress.get("lr"))
        if lr is None or lr <= 0.0:
            return malformed
        if counts[0] > n_steps:
            return f"it is at step {counts[0]}, past this schedule's {n_steps} steps"
        model_before = copy.deepcopy(self.model.state_dict())
        optimizer_before = copy.deepcopy(self.optimizer.state_dict())
        try:
            self.model.load_state_dict(content["model"])
            self.optimizer.load_state_dict(content["optimizer"])
        except Exception as exc:  # another architecture, another optimizer
            self.model.load_state_dict(model_before)
            self.optimizer.load_state_dict(optimizer_before)
            return f"its state does not fit this model or optimizer ({_check.first_line(exc)})"
        self.lr = lr
        self.next_step, self.epochs_trained, self.explorations = counts
        return None


def _started(trial: optuna.trial.FrozenTrial) -> str:
    return "" if trial.datetime_start is None else trial.datetime_start.isoformat()


class TrialCheckpoints:
    """The checkpoints of one study's trials, under ``checkpoint_dir``.

    Args:
        checkpoint_dir: The root every study's directory lives in.
        study: The study whose trials save and resume here.
    """

    def __init__(self, checkpoint_dir: Path, study: optuna.Study) -> None:
        self._study = study
        self._study_id = _compat.study_id(study)
        self.directory = study_directory(checkpoint_dir, study)
        """Where this study's checkpoints live."""
        self._legacy = legacy_study_directory(checkpoint_dir, study)

    def _key(self, trial: optuna.trial.FrozenTrial, batch_size: int) -> CheckpointKey:
        return CheckpointKey(
            study_id=self._study_id,
            study_name=self._study.study_name,
            trial_number=trial.number,
            trial_started=_started(trial),
            batch_size=batch_size,
        )

    def save(self, trial: optuna.trial.Trial, state: TrainingState, batch_size: int) -> Path:
        """Write ``state`` as ``trial``'s checkpoint; the path written."""
        path = checkpoint_file(self.directory, trial.number)
        save_checkpoint(
            path,
            self._key(_compat.frozen(trial), batch_size),
            {
                "model": state.model.state_dict(),
                "optimizer": state.optimizer.state_dict(),
                "progress": state.progress(),
            },
        )
        return path

    def resume(
        self, trial: optuna.trial.Trial, state: TrainingState, batch_size: int, n_steps: int
    ) -> int | None:
        """Restore ``state`` from the newest usable checkpoint of the trials ``trial`` retries.

        Returns the number of the trial resumed from, or ``None`` (nothing to resume: start from
        scratch).
        """
        try:
            history = _compat.retry_history(_compat.frozen(trial))
        except TypeError:
            history = []
            _logger.warning("trial %d: its retry_history is malformed; not resumed", trial.number)
        device = next(state.model.parameters(), torch.empty(0)).device
        for number in reversed(history):
            if not _check.is_int(number) or not 0 <= number < trial.number:
                _logger.warning(
                    "trial %d: retry_history holds %r, not a trial number before its own; skipped",
                    trial.number,
                    number,
                )
                continue
            path = checkpoint_file(self.directory, number)
            if not path.exists():
                path = checkpoint_file(self._legacy, number)  # written before the digest
            if not path.exists():
                continue
            retried = self._stored_trial(number)
            if retried is None:
                ignore_checkpoint(path, f"the study holds no trial {number}")
                continue
            content = read_checkpoint(path, self._key(retried, batch_size), device)
            if content is None:
                continue
            why = state.restore(content, n_steps)
            if why is not None:
                ignore_checkpoint(path, why)
                continue
            _logger.info(
                "trial %d resumes from %s at step %d", trial.number, path, state.next_step
            )
            return int(number)
        return None

    def _stored_trial(self, number: int) -> optuna.trial.FrozenTrial | None:
        storage = _compat.storage_of(self._study)
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(self._study_id, number)
        except KeyError:
            return None
        return storage.get_trial(trial_id)
