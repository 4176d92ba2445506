"""Run ``optuna-sm2`` in this process, and make studies as its commands leave them."""

from __future__ import annotations

import hashlib
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import optuna

from optuna_sm2 import attrs
from optuna_sm2.cli import main


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``optuna-sm2 argv``: exit code (argparse's ``SystemExit`` included), stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def assert_refused(code: int, out: str, err: str, command: str, *mentions: str) -> str:
    """An exit 2 with one line on stderr, no traceback, that mentions each of ``mentions``."""
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(f"optuna-sm2 {command}: error: "), err
    assert "Traceback" not in err + out
    for mention in mentions:
        assert mention in err, (mention, err)
    return err


def fingerprint(path: Path) -> str | None:
    """The content of ``path`` as a hash, ``None`` when it does not exist."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def demo_schedule(**settings: Any) -> dict[str, Any]:
    """``sm2.schedule`` of the demo's objective with these schedule settings."""
    from optuna_sm2.cli._study import objective_schedule
    from optuna_sm2.scenarios.digits import demo_objective

    return objective_schedule(demo_objective(device="cpu", **settings))


def demo_study(
    storage: str | optuna.storages.BaseStorage,
    name: str,
    *,
    n_trials: int = 0,
    pruner: Any = None,
    **settings: Any,
) -> optuna.Study:
    """A study as ``demo`` or ``worker --scenario demo`` makes it, without training: its
    ``sm2.schedule`` (and ``sm2.pruner`` when given) and ``n_trials`` finished trials."""
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    study.set_user_attr(attrs.SCHEDULE, demo_schedule(**settings))
    if pruner is not None:
        study.set_user_attr(attrs.PRUNER, pruner)
    for i in range(n_trials):
        study.add_trial(
            optuna.trial.create_trial(
                params={"batch_size": 4 * 2**i},
                distributions={
                    "batch_size": optuna.distributions.CategoricalDistribution([4, 8, 16, 32])
                },
                value=0.5,
            )
        )
    return study
