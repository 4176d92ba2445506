"""Checkpoint files: one safe directory per study, files tied to their trial, atomic writes.

A checkpoint lives at ``<checkpoint_dir>/<study directory>/<trial number>.pt``. The study
directory is one path component made from the study's name (reduced to letters, digits, ``.``,
``_`` and ``-``), the storage's study id and a digest of the storage (its URL without password,
or its file), so that no study name can lead outside ``checkpoint_dir`` and two studies never
share a directory, whether in one storage or in two whose studies have the same name and id.
Each file holds the :class:`CheckpointKey` of the trial that wrote it; a file whose key differs
from the one expected, or that cannot be read (corrupt, truncated, refused by
``torch.load(weights_only=True)``), is ignored with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from optuna_sm2 import _compat
from optuna_sm2 import _validation as _check

if TYPE_CHECKING:
    import optuna

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_NAME_CHARS = 64
"""At most this many characters of the study name go into its directory name."""

CONTENT = ("key", "model", "optimizer", "progress")
"""The entries of a checkpoint file."""


def study_directory_name(study_name: str, study_id: int, storage: str | None = None) -> str:
    """``<name>-<study id>-<storage digest>``: one safe path component for a study, whatever its
    name holds.

    Every run of characters other than ASCII letters, digits, ``.``, ``_`` and ``-`` becomes one
    ``_``; leading and trailing ``.`` and ``_`` are dropped (so the component never starts with a
    dot); at most 64 characters of the name are kept; an empty result reads ``study``. With
    ``storage`` (the storage's identity, :func:`optuna_sm2._compat.storage_identity`), the first
    10 hex digits of its SHA-256 end the name; without, it is the name of optuna-sm2 0.x.

    >>> study_directory_name("sm2-demo", 1)
    'sm2-demo-1'
    >>> study_directory_name("sm2-demo", 1, "journal:/home/me/studies/demo.log")
    'sm2-demo-1-f9be71621b'
    >>> study_directory_name("../../x", 2), study_directory_name("..", 3)
    ('x-2', 'study-3')
    >>> study_directory_name("/etc/passwd", 4), study_directory_name("a\\x00b\\\\c", 5)
    ('etc_passwd-4', 'a_b_c-5')
    """
    if not isinstance(study_name, str):
        raise ValueError(f"`study_name` must be a string, got {study_name!r}.")
    number = _check.check_int("study_id", study_id, minimum=0)
    name = _UNSAFE.sub("_", study_name).strip("._")[:_NAME_CHARS].strip("._")
    if storage is None:
        return f"{name or 'study'}-{number}"
    digest = hashlib.sha256(storage.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{name or 'study'}-{number}-{digest}"


def study_directory(checkpoint_dir: Path, study: optuna.Study) -> Path:
    """Where the checkpoints of ``study``'s trials live under ``checkpoint_dir``."""
    storage = _compat.storage_identity(_compat.storage_of(study))
    name = study_directory_name(study.study_name, _compat.study_id(study), storage)
    return checkpoint_dir / name


def legacy_study_directory(checkpoint_dir: Path, study: optuna.Study) -> Path:
    """Where optuna-sm2 0.x kept them, without the storage's digest: read, never written (a
    file there holds its trial's start time in its key, so another storage's is refused)."""
    return checkpoint_dir / study_directory_name(study.study_name, _compat.study_id(study))


def checkpoint_file(directory: Path, trial_number: object) -> Path:
    """``directory / "<trial number>.pt"``; the number is checked before it goes into the path.

    Raises:
        ValueError: ``trial_number`` is not an integer >= 0.
    """
    return directory / f"{_check.check_int('trial_number', trial_number, minimum=0)}.pt"


@dataclass(frozen=True)
class CheckpointKey:
    """What ties a checkpoint to the trial that wrote it; stored inside, compared on load.

    ``trial_started`` (the trial's start time as its storage holds it) tells a recreated study
    apart from the deleted one: SQLite gives a new study the id of a deleted one, and its trials
    the same numbers.
    """

    study_id: int
    study_name: str
    trial_number: int
    trial_started: str
    batch_size: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def save_checkpoint(path: Path, key: CheckpointKey, content: dict[str, Any]) -> None:
    """Write ``content`` (model and optimizer state dicts, progress) and ``key`` to ``path``.

    The file is written and flushed to disk next to its destination, then renamed over it, so a
    worker killed mid-write leaves the previous checkpoint intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}-{threading.get_ident()}")
    try:
        with partial.open("wb") as file:
            torch.save({**content, "key": key.to_json()}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def ignore_checkpoint(path: Path, why: str) -> None:
    """Warn that the checkpoint at ``path`` is not used, and why."""
    warnings.warn(
        f"checkpoint {path} ignored: {why}; the trial does not resume from it",
        UserWarning,
        stacklevel=3,
    )


def read_checkpoint(path: Path, key: CheckpointKey, device: torch.device) -> dict[str, Any] | None:
    """The content of the checkpoint at ``path`` if it can be read and holds ``key``.

    Returns ``None``, with a warning naming the file and the reason, when the file cannot be
    read, is not a checkpoint of this format, or belongs to another study, trial or batch size.
    """
    try:
        content = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # corrupt, truncated, unreadable, or refused by weights_only
        ignore_checkpoint(path, f"it cannot be read ({_check.first_line(exc)})")
        return None
    if not isinstance(content, dict) or not all(entry in content for entry in CONTENT):
        ignore_checkpoint(path, f"it is not a checkpoint holding {', '.join(CONTENT)}")
        return None
    stored, expected = content["key"], key.to_json()
    if stored != expected:
        stored = stored if isinstance(stored, dict) else {}
        differs = ", ".join(
            f"{name} {stored.get(name)!r} (expected {value!r})"
            for name, value in expected.items()
            if stored.get(name) != value
        )
        ignore_checkpoint(path, f"it belongs to another trial: {differs}")
        return None
    return content
