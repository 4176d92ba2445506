"""The local PostgreSQL and Redis servers for tests, and a TCP proxy that can cut them off."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (skips the test, saying
    why, when the server cannot be used)."""
    try:
        import psycopg

        admin = psycopg.connect(f"{POSTGRES}/test", connect_timeout=3, autocommit=True)
    except Exception as exc:  # any reason the server cannot be used: skip, saying which
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (database test) is not usable: {exc}")
    name = f"sm2_test_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


@contextlib.contextmanager
def redis_database(db: int = 11) -> Iterator[str]:
    """The URL of Redis database ``db``, emptied before and after (skips the test, saying why,
    when the server cannot be used). The CLI's Redis journal has no key prefix, so a test that
    runs it takes a database of its own."""
    try:
        import redis

        client = redis.Redis.from_url(f"{REDIS}/{db}", socket_connect_timeout=2)
        client.flushdb()
    except Exception as exc:  # any reason the server cannot be used: skip, saying which
        pytest.skip(f"Redis at {REDIS} is not usable: {exc}")
    try:
        yield f"{REDIS}/{db}"
    finally:
        client.flushdb()
        client.close()


class Proxy:
    """A TCP proxy on 127.0.0.1 to ``port``, that :meth:`cut` stops dead (open connections
    closed, new ones refused) and :meth:`resume` opens again on the same port: a server lost in
    the middle of a study, and back."""

    def __init__(self, port: int) -> None:
        self._upstream = port
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0
        self._listener: socket.socket | None = None
        self.resume()

    def url(self, url: str, port: int) -> str:
        """``url`` with its ``port`` replaced by the proxy's."""
        return url.replace(f":{port}", f":{self.port}", 1)

    def resume(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):  # wakes the thread waiting in accept()
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection(("127.0.0.1", self._upstream))
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
