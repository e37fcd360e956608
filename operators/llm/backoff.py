"""Run-wide backoff: after a rate limit, a 5xx or a request that got no answer, every request
of the run waits, not only the one that failed.

Retrying request by request lets four workers keep hammering an endpoint that asked for an
hour's pause. Here one pause is shared: a transient failure sets it (the server's
``Retry-After`` when given, else ``backoff * 2**k`` for the request's k-th retry, plus up to 10%
jitter, all capped at ``max_backoff``), every request waits it out, and the first
request after it is a *probe*: the others wait for its answer (the half-open state of a
circuit breaker, Nygard, *Release It!*, 2007). A reply of any other kind ends the backoff.

Example:
    >>> import threading
    >>> b = RunBackoff(base=1.0, cap=60.0, cancel=threading.Event())
    >>> b.failed("rate_limited", retry_after=3600.0); round(b.state()[0])  # capped
    60
"""

from __future__ import annotations

import random
import threading
import time

WAIT_SLICE = 0.25
"""Longest sleep (seconds) between two looks at the cancel flag."""


class BackoffCancelled(Exception):  # noqa: N818 - reads as what happened
    """The wait was cancelled (the run is stopping)."""


class RunBackoff:
    """One pause shared by every request of a client (thread-safe).

    Args:
        base: seconds of the first pause when the server gives no ``Retry-After``.
        cap: the longest pause, seconds (``llm.max_backoff``).
        cancel: set when the run stops; :meth:`wait` then raises :class:`BackoffCancelled`.
    """

    def __init__(self, base: float, cap: float, cancel: threading.Event):
        self.base, self.cap, self.cancel = base, cap, cancel
        self._cond = threading.Condition()
        self._until = 0.0
        self._streak = 0
        self._probing = False
        self._kind = ""
        self._reason = ""
        self._since: float | None = None  # when the current streak of failures began
        self._jitter = random.Random()  # spread only; no reproducibility needed

    def wait(self) -> None:
        """Block until this thread may send a request.

        Raises:
            BackoffCancelled: ``cancel`` was set while waiting.
        """
        with self._cond:
            while True:
                if self.cancel.is_set():
                    raise BackoffCancelled("the run is stopping")
                now = time.monotonic()
                if now < self._until:
                    self._cond.wait(min(self._until - now, WAIT_SLICE))
                elif self._probing:
                    self._cond.wait(WAIT_SLICE)
                else:
                    if self._streak:
                        self._probing = True  # this request finds out if the pause is over
                    return

    def failed(
        self, kind: str, retry_after: float | None = None, reason: str = "", attempt: int = 0
    ) -> None:
        """A request failed transiently (``rate_limited``, ``server_error``, ``timeout``...):
        pause every request, for the server's ``retry_after`` or ``base * 2**attempt`` (the
        failed request's own attempt number, so concurrent requests failing together do not
        double the pause each), with jitter, never past ``cap``."""
        with self._cond:
            if not self._streak:
                self._since = time.monotonic()
            self._streak += 1
            self._reason = reason
            delay = retry_after if retry_after is not None else self.base * 2**attempt
            delay = min(self.cap, delay * (1.0 + 0.1 * self._jitter.random()))
            self._until = max(self._until, time.monotonic() + delay)
            self._kind = kind
            self._probing = False
            self._cond.notify_all()

    def done(self) -> None:
        """A request got an answer that is not a transient failure: the backoff is over."""
        with self._cond:
            self._streak = 0
            self._probing = False
            self._kind = ""
            self._since = None
            self._cond.notify_all()

    def release(self) -> None:
        """A request that passed :meth:`wait` was never sent (refused by the budget): let
        another probe."""
        with self._cond:
            self._probing = False
            self._cond.notify_all()

    def outage(self) -> tuple[float, str, str]:
        """``(seconds since the current streak of transient failures began, its last kind, its
        last reason)``; ``(0, "", "")`` while requests get answers."""
        with self._cond:
            if self._since is None:
                return 0.0, "", ""
            return time.monotonic() - self._since, self._kind, self._reason

    def state(self) -> tuple[float, str]:
        """``(seconds left in the pause, the failure kind that set it)``; ``(0, "")`` when
        requests flow."""
        with self._cond:
            left = self._until - time.monotonic()
            if left <= 0 and not self._streak:
                return 0.0, ""
            return max(0.0, left), self._kind


__all__ = ["BackoffCancelled", "RunBackoff"]
