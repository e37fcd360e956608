"""An OpenAI-compatible chat-completions server on 127.0.0.1 for tests, answering from a script.

The server runs the stdlib ``ThreadingHTTPServer`` in a background thread on a free port and
answers ``POST /v1/chat/completions`` with the next item of its script (items are consumed in
order; a callable script is called with the request's JSON instead). An item is one of:

- a ``str``: a normal reply with that content (``""``: empty content);
- :class:`Reply`: content with explicit token usage;
- :class:`Status`: an HTTP error (429 with ``Retry-After``, 500, 503, ...);
- :class:`Slow`: a normal reply sent after a delay (longer than the client's timeout);
- :class:`Trickle`: a normal reply whose body is sent one byte at a time, ``interval`` apart
  (a server that is alive but never done: no read timeout ever fires);
- :data:`DROP`: the connection is closed without any response;
- :data:`NOT_JSON`: a 200 response whose body is not JSON.

Every request is recorded (path, headers, raw body, parsed JSON) in :attr:`LLMServer.requests`,
so tests can assert what the client sent. Usage in replies is ``len(text) // 4`` tokens unless
a :class:`Reply` says otherwise, so cost accounting is exercised.

Example:
    >>> with LLMServer(["hello"]) as server:
    ...     url = server.base_url  # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """A normal reply with explicit usage (``None``: ``len(text) // 4``)."""

    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Status:
    """An HTTP error response; ``retry_after`` (seconds) sets the ``Retry-After`` header."""

    code: int
    retry_after: float | None = None
    body: str = '{"error": {"message": "scripted error", "type": "server_error"}}'


@dataclass(frozen=True)
class Slow:
    """A normal reply sent after ``seconds`` (the client has usually given up by then)."""

    seconds: float
    content: str = "late"


@dataclass(frozen=True)
class Trickle:
    """A normal reply whose bytes are sent one every ``interval`` seconds."""

    interval: float
    content: str = "trickled"


DROP = "<drop the connection>"
NOT_JSON = "<a body that is not JSON>"

Item = Any
Script = Sequence[Item] | Callable[[dict[str, Any]], Item]


@dataclass
class Recorded:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]  # names lower-cased
    raw: bytes
    json: dict[str, Any] | None
    at: float = field(default_factory=time.monotonic)

    @property
    def prompt(self) -> str:
        """All message contents joined, in order."""
        msgs = (self.json or {}).get("messages", [])
        return "\n".join(str(m.get("content", "")) for m in msgs)


class LLMServer:
    """A scripted chat-completions server; use as a context manager (see the module docstring)."""

    def __init__(self, script: Script):
        self._script = script
        self._items = list(script) if not callable(script) else []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.requests: list[Recorded] = []
        self.exhausted = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Wake slow replies, stop serving and free the port."""
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def add(self, *items: Item) -> None:
        """Append items to a list script."""
        with self._lock:
            self._items.extend(items)

    def _next(self, request: dict[str, Any] | None) -> Item:
        if callable(self._script):
            return self._script(request or {})
        with self._lock:
            if self._items:
                return self._items.pop(0)
            self.exhausted += 1
        return Status(500, body='{"error": {"message": "test script exhausted"}}')

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with server._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    server.requests.append(Recorded(self.path, headers, raw, body))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                item = server._next(body)
                self._answer(item, body or {})

            def _answer(self, item: Item, body: dict[str, Any]) -> None:
                if item == DROP:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    self.connection.close()
                    return
                if item == NOT_JSON:
                    self._send(200, b"<html>502 Bad Gateway from a proxy</html>")
                    return
                if isinstance(item, Status):
                    headers = {}
                    if item.retry_after is not None:
                        headers["Retry-After"] = f"{item.retry_after:g}"
                    self._send(item.code, item.body.encode(), headers)
                    return
                if isinstance(item, Slow):
                    if server._stop.wait(item.seconds):
                        return
                    item = item.content
                trickle = item.interval if isinstance(item, Trickle) else None
                if isinstance(item, Trickle):
                    item = item.content
                if isinstance(item, str):
                    item = Reply(item)
                prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
                p_tok = item.prompt_tokens if item.prompt_tokens is not None else prompt_chars // 4
                c_tok = (
                    item.completion_tokens
                    if item.completion_tokens is not None
                    else len(item.content) // 4
                )
                reply = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "test-model"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": item.content},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": p_tok,
                        "completion_tokens": c_tok,
                        "total_tokens": p_tok + c_tok,
                    },
                }
                if trickle is None:
                    self._send(200, json.dumps(reply).encode())
                else:
                    self._trickle(json.dumps(reply).encode(), trickle)

            def _trickle(self, payload: bytes, interval: float) -> None:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.flush()
                    for i in range(len(payload)):
                        if server._stop.wait(interval):
                            return
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                except OSError:
                    pass  # the client gave up: its deadline held

            def _send(
                self,
                code: int,
                payload: bytes,
                headers: dict[str, str] | None = None,
                content_type: str = "application/json",
            ) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test): nothing to answer

        return Handler
