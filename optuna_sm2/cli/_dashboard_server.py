"""The web server of ``optuna-sm2 dashboard``, apart from the command so that its parser (and
``optuna-sm2 --help``) does not import ``wsgiref`` and ``http.server``."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from optuna_sm2.cli._common import CLIError


class _QuietHandler(WSGIRequestHandler):
    """A request handler that does not log each request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _IPv6Server(WSGIServer):
    address_family = socket.AF_INET6


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

READING = frozenset({"GET", "HEAD", "OPTIONS"})
"""The HTTP methods a read-only dashboard answers; any other (POST, PUT, DELETE, PATCH) would
create, edit or delete studies, trials or notes."""


def make_dashboard_server(
    storage: optuna.storages.BaseStorage,
    host: str,
    port: int,
    *,
    quiet: bool = False,
    allow_writes: bool = False,
) -> WSGIServer:
    """A ``wsgiref`` server of optuna-dashboard's WSGI app over ``storage``, bound, not started,
    behind :func:`guard` (the ``Host`` check, and read-only unless ``allow_writes``).

    Call ``serve_forever()`` on it; ``server_port`` is the port bound (useful with ``port=0``).

    Raises:
        CLIError: ``host`` cannot be resolved or ``host:port`` cannot be bound.
    """
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)
    server_class = _IPv6Server if _is_ipv6(host) else WSGIServer
    handler_class = _QuietHandler if quiet else WSGIRequestHandler
    try:
        server = make_server(
            host, port, app, server_class=server_class, handler_class=handler_class
        )
    except OSError as exc:
        raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    server.set_app(guard(app, host, server.server_port, allow_writes=allow_writes))
    return server


def guard(app: WSGIApp, host: str, port: int, *, allow_writes: bool) -> WSGIApp:
    """``app`` answering only requests addressed to this server, and only reading ones unless
    ``allow_writes``.

    A request's ``Host`` must name the port served and, as its host, an IP address, ``localhost``,
    the ``--host`` given, or this machine's name: a page of another site that a browser reaches
    through DNS rebinding sends its own host name, and gets ``403``. Read-only, a request other
    than ``GET``, ``HEAD`` or ``OPTIONS`` gets ``403`` too.
    """
    names = {"localhost", host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        asked = _host_and_port(environ.get("HTTP_HOST", ""))
        if asked is None or asked[1] != port or not _is_ip_or(asked[0], names):
            return _refuse(start_response, "the Host of this request is not this server")
        if not allow_writes and environ.get("REQUEST_METHOD", "GET").upper() not in READING:
            return _refuse(
                start_response,
                "this dashboard is read-only; start it with --allow-writes to edit or delete",
            )
        return app(environ, start_response)

    return guarded


def _host_and_port(header: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``Host`` header (``name:port``, ``[v6]:port``), or ``None``."""
    host, sep, port = header.strip().rpartition(":")
    if not sep or not port.isdigit() or (":" in host and not host.startswith("[")):
        return None
    return host.strip("[]").lower(), int(port)


def _is_ip_or(host: str, names: set[str]) -> bool:
    if host in names:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _refuse(start_response: Callable[..., Any], why: str) -> list[bytes]:
    body = f"403 Forbidden: {why}\n".encode()
    start_response(
        "403 Forbidden",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def dashboard_url(host: str, port: int, path: str) -> str:
    """The address of ``path`` on the server listening on ``host:port``."""
    shown = f"[{host}]" if _is_ipv6(host) else host
    return f"http://{shown}:{port}{path}"


def serve_until_interrupted(server: WSGIServer) -> None:
    """Serve in a thread until Ctrl-C reaches this (main) thread, then stop cleanly.

    ``wsgiref`` catches everything raised while it answers a request, ``KeyboardInterrupt``
    included, and would print it and keep serving; serving off the main thread keeps the
    interrupt out of request handling.
    """
    thread = threading.Thread(target=server.serve_forever, name="optuna-sm2-dashboard")
    thread.daemon = True
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    finally:
        server.shutdown()
        thread.join()
