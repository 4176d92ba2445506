"""The one check of a ``device`` argument, shared by :func:`optuna_sm2.explore_lr` and
``SM2Objective``: one ``ValueError`` naming ``device`` and what is accepted."""

from __future__ import annotations

import torch

from optuna_sm2._validation import first_line


def check_device(device: object) -> torch.device:
    """The training device; CUDA when available for ``None``, else the CPU.

    A device must be a ``str`` or ``torch.device`` that torch parses and this machine has: a
    CUDA device only where torch sees one (and its index among them), another backend only
    where a tensor can be made on it.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    accepted = "accepted: 'cpu', 'cuda' or 'cuda:K' where torch sees a GPU, or None"
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"`device` must be a str or torch.device, got {device!r}; {accepted}.")
    try:
        target = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(
            f"`device` {device!r} is not a torch device ({exc}); {accepted}."
        ) from None
    if target.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"`device` is {device!r}, but torch sees no CUDA device; {accepted}.")
        if target.index is not None and target.index >= count:
            raise ValueError(
                f"`device` is {device!r}, but torch sees {count} CUDA device(s); {accepted}."
            )
    elif target.type != "cpu":
        try:
            torch.empty(0, device=target)
        except Exception as exc:  # a backend this torch build or machine lacks
            raise ValueError(
                f"`device` {device!r} cannot be used here ({first_line(exc)}); {accepted}."
            ) from None
    return target
