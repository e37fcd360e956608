"""The result channel: how a trusted harness hands its result to evo, out of the program's reach.

A target whose trusted harness runs in the same process as the evaluated program (the
OpenEvolve runner, tinygpt's harness) declares ``result = "channel"``. For each evaluation
evo then makes two pipes and a random token, and gives the child two inherited file
descriptors instead of a result path:

* ``EVO_TOKEN_FD``: a pipe holding the token (32 hex digits) and then end-of-file;
* ``EVO_RESULT_FD``: the write end of the pipe evo reads the result from.

The harness, before any target code runs, removes both variables (and ``EVO_RESULT``) from its
environment, reads the token, closes that descriptor and marks the result descriptor
close-on-exec. When the program has finished it writes exactly one line,
``{"token": TOKEN, "result": {...}}`` and a newline, and exits at once (``os._exit``), so
nothing the program left behind (``atexit`` hooks, threads) runs after it.

evo reads the pipe until every process holding it is gone and accepts exactly one line with
the token. A line without it (the program found the descriptor and wrote its own result), two
results (the program wrote one with a token it dug out of the harness's memory, and so did the
harness) or a partial line is ``invalid_result`` with the reason. What a program in the
harness's process can still do is documented in ``targets/README.md``: it can read the
harness's memory and replace its code, so only a scorer in another process is out of reach.

Example:
    >>> ch = ResultChannel()
    >>> ch.feed(('{"token": "%s", "result": {"score": 1}}\\n' % ch.token).encode())
    >>> ch.result()
    ({'score': 1}, '')
    >>> ch.close()
"""

from __future__ import annotations

import json
import os
import secrets

TOKEN_FD_VAR = "EVO_TOKEN_FD"
RESULT_FD_VAR = "EVO_RESULT_FD"
LIMIT = 8 << 20
"""Bytes read from the channel; more is ``invalid_result``."""


class ResultChannel:
    """One evaluation's channel: the pipes, the token and what arrived (see the module doc)."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        token_r, token_w = os.pipe()
        os.write(token_w, self.token.encode())  # 32 bytes: far below any pipe buffer
        os.close(token_w)
        self.result_r, result_w = os.pipe()
        os.set_blocking(self.result_r, False)
        self._child_fds = [token_r, result_w]
        self._data = bytearray()
        self.total = 0

    @property
    def child_fds(self) -> tuple[int, ...]:
        """Descriptors the child inherits (``subprocess.Popen(pass_fds=...)``)."""
        return tuple(self._child_fds)

    def env(self) -> dict[str, str]:
        """The variables that tell the harness which descriptors to use."""
        token_r, result_w = self._child_fds
        return {TOKEN_FD_VAR: str(token_r), RESULT_FD_VAR: str(result_w)}

    def started(self) -> None:
        """Close the child's ends here once it has them, so end-of-file means it is gone."""
        for fd in self._child_fds:
            os.close(fd)
        self._child_fds = []

    def feed(self, data: bytes) -> None:
        """Keep what arrived, up to :data:`LIMIT` bytes."""
        self.total += len(data)
        room = LIMIT - len(self._data)
        if room > 0:
            self._data += data[:room]

    def close(self) -> None:
        for fd in [self.result_r, *self._child_fds]:
            try:
                os.close(fd)
            except OSError:
                pass
        self._child_fds = []
        self.result_r = -1

    def result(self) -> tuple[dict | None, str]:
        """The harness's result object, or None and a one-line reason it is not usable."""
        if self.total > LIMIT:
            return None, f"the result channel carried {self.total} bytes, over {LIMIT}"
        if not self._data:
            return None, (
                "the harness wrote no result to the result channel (did the program exit "
                "before its evaluation returned?)"
            )
        *lines, rest = bytes(self._data).split(b"\n")
        if rest.strip():
            return None, "the result channel ended in a partial message (not the harness's)"
        found, forged = [], 0
        for line in lines:
            if not line.strip():
                continue
            try:
                message = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                message = None
            if (
                isinstance(message, dict)
                and message.get("token") == self.token
                and isinstance(message.get("result"), dict)
            ):
                found.append(message["result"])
            else:
                forged += 1
        if forged:
            return None, (
                f"{forged} message(s) on the result channel without the harness's token: "
                "the program wrote its own result"
            )
        if not found:
            return None, "the harness wrote no result to the result channel"
        if len(found) > 1:
            return None, f"{len(found)} results on the result channel; the harness writes one"
        return found[0], ""


__all__ = ["LIMIT", "RESULT_FD_VAR", "TOKEN_FD_VAR", "ResultChannel"]
