"""The circuit breaker of a run's LLM operators: stop a run that only burns requests.

An endpoint that never answers, a model whose every reply is unusable, or one that only
repeats programs the run has seen, would otherwise keep a run busy (and billed) forever while
nothing is evaluated. :class:`CircuitBreaker` counts LLM proposals in a row that gave no new
child; at ``llm.max_failures`` it trips with one line naming the endpoint, the failure class
and the last error. An endpoint that answers nothing at all (timeouts, 429s, 5xx in a row)
trips it after ``llm.max_outage`` seconds, however long each request waits; an unreachable one
(connection refused, unknown host) trips it at once: the client has already retried it.

Example:
    >>> b = CircuitBreaker(2, "http://127.0.0.1:9/v1")
    >>> b.record("edit", "block 1 matches nothing"); b.tripped
    ''
    >>> b.record("edit", "block 1 matches nothing"); b.tripped[:40]
    'the LLM endpoint http://127.0.0.1:9/v1 g'
"""

from __future__ import annotations

import threading

from evo.proposal_log import outcome_of

NOT_COUNTED = ("budget", "cancelled")
"""Kinds that say nothing about the endpoint: the run's own budget, the run stopping."""


class CircuitBreaker:
    """Counts failed LLM proposals in a row (thread-safe).

    Args:
        max_failures: failures in a row that trip it (``0``: never, except unreachable).
        endpoint: the ``llm.base_url``, for the message.
    """

    def __init__(self, max_failures: int, endpoint: str):
        self.max_failures = max_failures
        self.endpoint = endpoint
        self.streak = 0
        self.tripped = ""
        self._lock = threading.Lock()

    def outage(self, seconds: float, kind: str, reason: str, limit: float) -> None:
        """The endpoint has answered nothing for ``seconds`` (the client's run-wide backoff
        streak); trip when that passes ``limit`` (``llm.max_outage``; 0: never)."""
        with self._lock:
            if self.tripped or not limit or seconds < limit:
                return
            self.tripped = (
                f"the LLM endpoint {self.endpoint} answered no request for {seconds:.0f} s "
                f"(llm.max_outage = {limit:g} s); last: request failed ({kind}): {reason}"
            )

    def record(self, kind: str, reason: str = "", detail: str = "") -> None:
        """One proposal's outcome: ``kind`` ``"child"`` for a new child, else its failure."""
        with self._lock:
            if kind == "child":
                self.streak = 0
                return
            if kind in NOT_COUNTED or self.tripped:
                return
            self.streak += 1
            what = outcome_of(kind, detail)
            label = f"{what} ({kind}{': ' + detail if detail else ''})"
            if kind == "unreachable":
                why = reason.split(": unreachable: ", 1)[-1]  # the operator's prefix repeats it
                self.tripped = (
                    f"the LLM endpoint {self.endpoint} is unreachable: {why}; check "
                    "llm.base_url and that the server is running"
                )
            elif self.max_failures and self.streak >= self.max_failures:
                self.tripped = (
                    f"the LLM endpoint {self.endpoint} gave no new child in "
                    f"{self.streak} proposals in a row (llm.max_failures); last: {label}: "
                    f"{reason}"
                )


__all__ = ["CircuitBreaker"]
