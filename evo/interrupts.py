"""Ctrl-C and SIGTERM for a running search: stop cleanly, never leave a child behind.

The first Ctrl-C asks the loop to finish the children in flight and stop; a second (or one
SIGTERM) asks it to abandon them at once. The loop reads :attr:`Interrupts.count`; the handlers
only count, so a signal can never arrive in the middle of a store write and tear it.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

log = logging.getLogger("evo")


class Interrupts:
    """Counts SIGINT/SIGTERM between :meth:`install` and :meth:`restore`.

    Off the main thread (where Python cannot install handlers) it counts nothing and the
    caller's own handling stays in place.
    """

    def __init__(self) -> None:
        self.count = 0
        self.last = ""  # the signal that arrived last: "Ctrl-C" or "SIGTERM"
        self._old: tuple[Any, Any] | None = None

    def reason(self) -> str:
        """Why the run stopped, for its summary (``""`` when no signal came)."""
        if not self.count:
            return ""
        if self.abandon:
            return (
                f"stopped by {self.last}: evaluations and LLM requests in flight were "
                "abandoned (a resumed run re-queues the evaluations)"
            )
        return f"stopped by {self.last}: the runs in flight were finished"

    @property
    def abandon(self) -> bool:
        """True once the children in flight should be abandoned, not waited for."""
        return self.count >= 2

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._old = (
                signal.signal(signal.SIGINT, self._on_sigint),
                signal.signal(signal.SIGTERM, self._on_sigterm),
            )

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old[0])
            signal.signal(signal.SIGTERM, self._old[1])
            self._old = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.last = "Ctrl-C"
        if self.count == 1:
            log.warning(
                "Ctrl-C: finishing the children in flight (Ctrl-C again abandons "
                "them; they are re-queued on resume)"
            )

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.count = 2
        self.last = "SIGTERM"


__all__ = ["Interrupts"]
