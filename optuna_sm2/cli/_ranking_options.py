"""``--alpha``, ``--beta`` and ``--lr-scale`` of the commands that explain a study's rungs
(``report``, ``dashboard``): overrides for studies that do not store their pruner's settings."""

from __future__ import annotations

import argparse
from typing import Any

from optuna_sm2.attrs import PRUNER
from optuna_sm2.cli._common import CLIError

_USED_ONLY = (
    f"used only for a study that does not store its pruner's settings ({PRUNER}); a study "
    "that does is explained with its own"
)


def add_ranking_options(parser: argparse.ArgumentParser) -> None:
    """The override options, default "not given" (``None``)."""
    parser.add_argument(
        "--alpha",
        type=float,
        help=f"α of Eq. 2 to rank the rungs with (default the pruner's, 0.75); {_USED_ONLY}",
    )
    parser.add_argument(
        "--beta",
        type=float,
        help=f"β of Eq. 2 (default the pruner's, 0.5); {_USED_ONLY}",
    )
    parser.add_argument(
        "--lr-scale",
        choices=("log", "linear"),
        help=f"how learning rates are compared (default the pruner's, log); {_USED_ONLY}",
    )


def ranking_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``alpha``, ``beta``, ``lr_scale`` as given (``None`` when not).

    Raises:
        CLIError: ``--alpha`` or ``--beta`` outside [0, 1].
    """
    for name in ("alpha", "beta"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise CLIError(f"--{name} must be in [0, 1], got {value}")
    return {"alpha": args.alpha, "beta": args.beta, "lr_scale": args.lr_scale}
