"""The web server of ``optuna-sm2 dashboard``, apart from the command so that its parser (and
``optuna-sm2 --help``) does not import ``wsgiref`` and ``http.server``."""

from __future__ import annotations

import ipaddress
import socket
import threading
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


def make_dashboard_server(
    storage: optuna.storages.BaseStorage, host: str, port: int, *, quiet: bool = False
) -> WSGIServer:
    """A ``wsgiref`` server of optuna-dashboard's WSGI app over ``storage``, bound, not started.

    Call ``serve_forever()`` on it; ``server_port`` is the port bound (useful with ``port=0``).

    Raises:
        CLIError: ``host`` cannot be resolved or ``host:port`` cannot be bound.
    """
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)
    server_class = _IPv6Server if _is_ipv6(host) else WSGIServer
    handler_class = _QuietHandler if quiet else WSGIRequestHandler
    try:
        return make_server(host, port, app, server_class=server_class, handler_class=handler_class)
    except OSError as exc:
        raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


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
