"""``optuna-sm2 dashboard``: attach SM² figures and notes to studies, serve optuna-dashboard."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

import optuna

from optuna_sm2 import _compat
from optuna_sm2.cli._common import (
    CLIError,
    add_storage_option,
    open_storage,
    storage_failure,
    storage_failures,
    study_names,
)
from optuna_sm2.cli._ranking_options import add_ranking_options, ranking_overrides


def _write_errors() -> tuple[type[Exception], ...]:
    """What writing to an opened storage raises when it is read-only, locked or damaged."""
    return (*storage_failures(), OSError)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="attach SM² figures and notes to studies and serve optuna-dashboard",
        description=(
            "Attach to each SM² study of the storage (or to --study only) four figures, saved "
            "with optuna_dashboard.save_plotly_graph_object: energy per epoch against "
            "performance with the Pareto front; total energy per trial split into exploration, "
            "training and evaluation; the rung-by-rung Eq. 2 score of every configuration split "
            "into α·P, (1-α)·β·E and (1-α)·(1-β)·LR, with the pruner's decisions (ranked with "
            "the settings the study stores in sm2.pruner); cumulative study energy over time. "
            "The study gets a note with its headline (total energy, exploration share, energy "
            "on pruned trials, saving, best configuration), each trial a note (energy source, "
            "chosen LR and window, rung decisions) and the study its metric name. Attaching "
            "again replaces what an earlier run attached. Then serve optuna-dashboard, on "
            "loopback unless --host says otherwise."
        ),
    )
    add_storage_option(parser)
    parser.add_argument(
        "--study",
        metavar="NAME",
        help="attach to this study only (default: every study holding SM² data)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only); a request whose "
        "Host header names another host (DNS rebinding) is refused",
    )
    parser.add_argument(
        "--allow-writes",
        action="store_true",
        help="let the dashboard edit and delete studies, trials and notes (POST, PUT, DELETE); "
        "without it the dashboard is read-only",
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default 8080; 0: any free one)"
    )
    add_ranking_options(parser)
    parser.add_argument(
        "--no-serve",
        action="store_true",
        help="attach the figures and notes, then exit without serving",
    )
    parser.set_defaults(run=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_args(args: argparse.Namespace) -> None:
    ranking_overrides(args)
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be in 0..65535, got {args.port}")


def run(args: argparse.Namespace) -> int:
    from optuna_sm2.cli._dashboard_server import (
        dashboard_url,
        make_dashboard_server,
        serve_until_interrupted,
    )

    _check_args(args)
    storage = open_storage(args.storage)
    names = study_names(storage, args.storage)
    if args.study is not None and args.study not in names:
        available = ", ".join(names) if names else "none, the storage holds no studies"
        raise CLIError(f"no study named {args.study!r} in {args.storage}; available: {available}")
    # Bind first, so that a busy port or a bad --host fails before anything is written.
    server = (
        None
        if args.no_serve
        else make_dashboard_server(storage, args.host, args.port, allow_writes=args.allow_writes)
    )
    try:
        attached = _attach_all(storage, names, args)
        if server is None:
            return 0
        if not _is_loopback(args.host):
            print(
                f"optuna-sm2 dashboard: warning: listening on {args.host}, reachable from other "
                "machines"
                + ("; the dashboard can edit and delete studies" if args.allow_writes else ""),
                file=sys.stderr,
            )
        port = server.server_port
        for name, study_id in attached:
            link = dashboard_url(args.host, port, f"/dashboard/studies/{study_id}")
            print(f"study {name!r}: {link}")
        home = dashboard_url(args.host, port, "/dashboard")
        print(f"serving optuna-dashboard on {home} (Ctrl-C stops)")
        sys.stdout.flush()
        serve_until_interrupted(server)
        return 0
    finally:
        if server is not None:
            server.server_close()


def _attach_all(
    storage: optuna.storages.BaseStorage, names: list[str], args: argparse.Namespace
) -> list[tuple[str, int]]:
    """Attach to ``--study`` or to every SM² study; ``(name, study id)`` of each attached."""
    from optuna_sm2.visualization import attach_to_dashboard

    attached: list[tuple[str, int]] = []
    for name in [args.study] if args.study is not None else names:
        study = optuna.load_study(study_name=name, storage=storage)
        try:
            result = attach_to_dashboard(study, **ranking_overrides(args))
        except ValueError as exc:
            if args.study is not None:
                raise
            print(f"skipped study {name!r}: {exc}")
            continue
        except _write_errors() as exc:
            raise storage_failure("attach the figures to", args.storage, exc) from exc
        attached.append((name, _compat.study_id(study)))
        print(
            f"study {name!r}: attached {len(result.figure_ids)} figures, "
            f"{len(result.notes_written)} trial notes updated"
        )
    if not names:
        raise CLIError(f"{args.storage} holds no studies; nothing to show")
    if not attached:
        raise CLIError(f"no study in {args.storage} holds SM² data; nothing to show")
    return attached
