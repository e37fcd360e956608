"""Deadlines that hold for HTTP requests, and cancellation that takes effect within a second.

``httpx2``'s timeouts bound each socket operation, not a request: a server that trickles one
byte every few seconds never trips a 10 s read timeout, and a request can last for hours. The
``openai`` client gets an ``httpx2.Client`` (:func:`http_client`) whose network backend (the
extension point ``httpcore2.NetworkBackend``) caps every connect, read and write at the time
left to the request's total deadline, and waits for data in slices of at most
:data:`SLICE` seconds, so a cancel (Ctrl-C, SIGTERM, the run stopping) ends a request within
that slice instead of at the end of its timeout.

The deadline and the cancel flag belong to the calling thread, set by :func:`scope` around one
request; outside a scope the backend behaves exactly like the default one.

Example:
    >>> import threading
    >>> client = http_client(timeout=30.0)
    >>> with scope(seconds=30.0, cancel=threading.Event()):
    ...     pass  # client.post(...) here ends within 30 s, or soon after cancel.set()
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore2
import httpx2

SLICE = 0.25
"""Longest wait (seconds) on a socket between two looks at the deadline and the cancel flag."""

_local = threading.local()


class Cancelled(httpcore2.ReadError):
    """The request was cancelled by its caller (``cancel`` was set)."""


@contextlib.contextmanager
def scope(seconds: float, cancel: threading.Event) -> Iterator[None]:
    """Give the requests this thread makes inside the block a total deadline of ``seconds``
    (connect plus the whole response) and end them soon after ``cancel`` is set.

    A request past its deadline raises ``httpcore2`` timeouts, which ``httpx2`` and ``openai``
    report as their own timeout errors; a cancelled one raises :class:`Cancelled`.
    """
    old = getattr(_local, "scope", None)
    _local.scope = (time.monotonic() + seconds, cancel)
    try:
        yield
    finally:
        _local.scope = old


def _time_left(op_timeout: float | None, error: type[Exception]) -> float | None:
    """Seconds this socket operation may take: its own timeout, capped by the scope's deadline.

    Raises:
        Cancelled: the scope's cancel flag is set.
        error: the deadline has passed.
    """
    current = getattr(_local, "scope", None)
    if current is None:
        return op_timeout
    at, cancel = current
    if cancel.is_set():
        raise Cancelled("the request was cancelled")
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's total deadline has passed")
    return left if op_timeout is None else min(op_timeout, left)


class _Stream(httpcore2.NetworkStream):
    """A network stream whose reads wait in slices and whose every operation meets the
    deadline."""

    def __init__(self, inner: httpcore2.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # Our own per-operation end (httpx2's read timeout), then slices until data comes.
        op_end = None if timeout is None else time.monotonic() + timeout
        while True:
            own = None if op_end is None else op_end - time.monotonic()
            if own is not None and own <= 0:
                raise httpcore2.ReadTimeout("no data within the read timeout")
            left = _time_left(own, httpcore2.ReadTimeout)
            wait = SLICE if left is None else min(left, SLICE)
            try:
                # A recv that timed out consumed nothing, so trying again is safe.
                return self._inner.read(max_bytes, wait)
            except httpcore2.ReadTimeout:
                if left is not None and left <= SLICE:
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        left = _time_left(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore2.NetworkBackend):
    """Wraps the default backend so each connection is a deadline-aware :class:`_Stream`."""

    def __init__(self, inner: httpcore2.NetworkBackend):
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        left = _time_left(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        left = _time_left(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def http_client(timeout: float) -> httpx2.Client:
    """An ``httpx2.Client`` for ``openai.OpenAI(http_client=...)`` whose requests honour
    :func:`scope`; ``timeout`` (seconds) bounds each socket operation, as httpx2's does.

    Raises:
        RuntimeError: the installed ``httpx2`` no longer builds its pool as this expects (an
            incompatible upgrade; the message names the versions).
    """
    transport = httpx2.HTTPTransport()
    pool = getattr(transport, "_pool", None)
    if not isinstance(getattr(pool, "_network_backend", None), httpcore2.NetworkBackend):
        raise RuntimeError(
            f"httpx2 {httpx2.__version__} / httpcore2 {httpcore2.__version__}: the transport "
            "has no connection pool with a network backend; evo's request deadlines need "
            "the versions setup.cfg admits"
        )
    pool._network_backend = _Backend(pool._network_backend)  # type: ignore[union-attr]
    return httpx2.Client(transport=transport, timeout=timeout, follow_redirects=True)


__all__ = ["SLICE", "Cancelled", "http_client", "scope"]
