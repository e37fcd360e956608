"""Connecting to a Ray cluster: fail fast, in one line, when the address cannot work.

Ray itself waits minutes for a cluster that is not there, and its errors run to pages; these
helpers check the address first, turn on token authentication when a token is at hand, put
back the SIGTERM handler ``ray.init`` replaces, and shorten Ray's errors to one line.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
from typing import Any

from evo.evaluation.backends import BackendError

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a cluster's address to accept a connection before giving up."""


def check_reachable(address: str) -> None:
    """Fail fast when nothing listens at ``address``: Ray itself waits minutes for a GCS."""
    target = address
    if address.startswith("ray://"):
        import importlib.util

        if importlib.util.find_spec("grpc") is None:
            raise BackendError(
                f"backend.address {address!r}: a ray:// address needs the Ray "
                "client: pip install 'ray[client]'; or give the cluster's "
                "host:port (GCS, default port 6379)"
            )
        target = address[len("ray://") :]
    elif address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            found = canonicalize_bootstrap_address("auto")
        except Exception:  # ConnectionError, or Ray's internals moved
            found = None
        if not found:
            raise BackendError(
                "backend.address 'auto': no running Ray cluster found on this "
                "machine; start one with `ray start --head`, or give its "
                "host:port"
            )
        target = found
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise BackendError(
            f"backend.address {address!r} is not host:port, ray://host:port or "
            "'auto'; leave it empty to start a local Ray instance"
        )
    try:
        socket.create_connection(
            (host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT
        ).close()
    except OSError as e:
        raise BackendError(
            f"backend.address {address!r}: cannot reach a Ray cluster there "
            f"({one_line(e)}); start it with `ray start --head --port={port}` "
            "on that host, or fix the address"
        ) from None


def use_token_if_any() -> None:
    """Turn on Ray's token authentication when a token is at hand (``ray start`` made one):
    ``ray.init("auto")`` does that itself, an explicit address does not."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    except Exception:  # Ray's internals moved: connecting then says what is missing
        pass


def sigterm_handler() -> Any:
    return signal.getsignal(signal.SIGTERM)


def restore_sigterm(handler: Any) -> None:
    """Put back the SIGTERM handler ``ray.init`` replaced (with one that calls sys.exit)."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def one_line(e: BaseException) -> str:
    """``Type: first line`` of an error; a Ray task's error speaks through its cause."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        e = cause
    lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1].strip() if lines else ''}".rstrip(": ")


__all__ = ["check_reachable", "one_line", "restore_sigterm", "sigterm_handler", "use_token_if_any"]
