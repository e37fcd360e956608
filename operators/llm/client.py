"""A thread-safe chat client over any OpenAI-compatible endpoint: retries, budget, accounting.

The ``openai`` package does the HTTP (its own retries are off: ``max_retries=0``); this module
decides what to retry and how long to wait, caps the requests in flight, keeps the dollar
budget, and counts tokens, cost and failures per model. Whatever goes wrong, the only
exception that leaves :meth:`LLMClient.complete` is :class:`LLMFailure`.

The API key is read from the configured environment variable once, in :func:`make_client`, and
lives only inside the ``openai`` client; nothing here prints, logs or stores it.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import numpy as np

from operators.llm.backoff import BackoffCancelled, RunBackoff
from operators.llm.config import LLMConfig, ModelSpec
from operators.llm.transport import http_client, scope

NO_KEY = "not-needed"
"""Sent as the key when the configured variable is unset (local servers ignore it)."""

RETRYABLE_STATUS = (429, 500, 502, 503, 504)
REPLY_KEPT_CHARS = 4000
"""Characters of an unusable reply kept on its :class:`LLMFailure` (for ``proposals.jsonl``)."""
MESSAGE_OVERHEAD_TOKENS = 8
"""Tokens a chat template adds per message (role markers), on top of the content."""


class LLMFailure(Exception):  # noqa: N818 - reads as what happened: the LLM request failed
    """A request gave no usable reply.

    Attributes:
        reason: one line.
        kind: ``rate_limited``, ``server_error``, ``timeout`` (no complete reply within
            ``llm.timeout``), ``unreachable`` (the connection was refused or the host is
            unknown), ``connection`` (dropped mid-request), ``http_error`` (another 4xx),
            ``malformed``, ``empty``, ``too_large``, ``budget`` (refused by the dollar budget, never sent) or ``cancelled`` (the run
            is stopping).
        reply: the start of the reply when one came (``""`` otherwise).
        cost: dollars this failure was charged (the reply was billed).
        tokens: input plus output tokens of the reply that came (0 when none did).
    """

    def __init__(self, reason: str, kind: str, reply: str = "", cost: float = 0.0):
        super().__init__(f"{kind}: {reason}")
        self.reason = reason
        self.kind = kind
        self.reply = reply[:REPLY_KEPT_CHARS]
        self.cost = cost
        self.tokens = 0


@dataclass(frozen=True)
class Completion:
    """A usable reply and what it cost (the attempts that failed before it included)."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    attempts: int
    cut_off: bool = False
    """The reply stopped at ``llm.max_tokens`` (finish_reason ``length``). Its edit may still
    be whole (the model rambled on after it); the edit parsers refuse one that is not."""


class DollarBudget:
    """Dollars the LLM requests may spend in total, shared by every client and thread.

    Before a request, the worst case is reserved; it is refused when spent plus reserved would
    pass the limit. Afterwards the reservation is settled with the real cost. So the limit is
    never passed as long as a request costs no more than its worst case, which holds when the
    server reports at most one token per prompt byte and at most ``max_tokens`` reply tokens.

    Example:
        >>> b = DollarBudget(1.0)
        >>> b.reserve(0.4); b.settle(0.4, 0.1); round(b.spent, 2)
        0.1
    """

    def __init__(self, limit: float | None):
        if limit is not None and not limit >= 0:
            raise ValueError(f"budget limit must be >= 0 dollars, got {limit!r}")
        self.limit = limit
        self._lock = threading.Lock()
        self.spent = 0.0
        self.reserved = 0.0

    def reserve(self, amount: float) -> None:
        """Hold ``amount`` dollars for a request.

        Raises:
            LLMFailure: kind ``budget`` when the limit would be passed.
        """
        with self._lock:
            if self.limit is not None and self.spent + self.reserved + amount > self.limit:
                raise LLMFailure(
                    f"the dollar budget of ${self.limit:.4f} would be passed (spent "
                    f"${self.spent:.4f}, in flight ${self.reserved:.4f}, this request up to "
                    f"${amount:.4f})",
                    "budget",
                )
            self.reserved += amount

    def settle(self, reserved: float, actual: float) -> None:
        """Release a reservation and record what the request really cost."""
        with self._lock:
            self.reserved = max(0.0, self.reserved - reserved)
            self.spent += actual

    @property
    def remaining(self) -> float | None:
        """Dollars not yet spent or reserved (``None``: no limit)."""
        with self._lock:
            return None if self.limit is None else self.limit - self.spent - self.reserved


def estimate_input_tokens(messages: Sequence[dict[str, str]]) -> int:
    """An upper bound on the prompt's tokens: one per UTF-8 byte plus the template overhead.

    A BPE token covers at least one byte, so this bounds what any endpoint can charge; it is
    about four times the typical count, which makes the budget conservative, never exceeded.
    """
    return (
        sum(len(m.get("content", "").encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS for m in messages)
        + MESSAGE_OVERHEAD_TOKENS
    )


class LLMClient:
    """Chat completions with retries, a concurrency cap, a dollar budget and usage accounting.

    Build it with :func:`make_client`. Every public method is thread-safe.
    """

    def __init__(self, config: LLMConfig, api_key: str, budget: DollarBudget | None = None):
        self.config = config
        self.budget = budget if budget is not None else DollarBudget(None)
        self.cancel = threading.Event()
        self.backoff = RunBackoff(config.backoff, config.max_backoff, self.cancel)
        import openai  # here, not at the top: a run without an LLM never pays its ~0.7 s import

        self._openai = openai.OpenAI(
            base_url=config.base_url,
            api_key=api_key,
            max_retries=0,
            timeout=config.timeout,
            http_client=http_client(config.timeout),
        )
        self._slots = threading.Semaphore(config.concurrency)
        self._lock = threading.Lock()
        self._usage: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        """Cancel every request in flight or waiting (each ends within a second with kind
        ``cancelled``) and refuse new ones."""
        self.cancel.set()

    def __repr__(self) -> str:  # never show the openai client (it holds the key)
        return f"LLMClient(base_url={self.config.base_url!r}, models={self.model_names()})"

    def model_names(self) -> list[str]:
        return [m.name for m in self.config.models]

    def pick_model(self, rng: np.random.Generator) -> ModelSpec:
        """A model drawn with probability proportional to its weight (one draw from ``rng``)."""
        models = self.config.models
        if not models:
            raise LLMFailure("no models configured (llm.models is empty)", "http_error")
        w = np.array([m.weight for m in models], dtype=float)
        return models[int(rng.choice(len(models), p=w / w.sum()))]

    def complete(self, messages: Sequence[dict[str, str]], model: ModelSpec) -> Completion:
        """Send one chat request, retrying transient failures.

        Args:
            messages: chat messages (``{"role": ..., "content": ...}``).
            model: the model to ask (from :meth:`pick_model`).

        Raises:
            LLMFailure: the only exception this raises; see its ``kind``.
        """
        cfg = self.config
        worst_in = estimate_input_tokens(messages)
        worst = model.cost(worst_in, cfg.max_tokens)
        spent_in = spent_out = 0
        spent_cost = 0.0
        for attempt in range(cfg.retries + 1):
            try:
                self.backoff.wait()  # a run-wide pause after a rate limit, 5xx or timeout
            except BackoffCancelled:
                raise LLMFailure("the run is stopping", "cancelled") from None
            try:
                self.budget.reserve(worst)
            except LLMFailure as e:
                self.backoff.release()
                self._record(model.name, 0, 0, 0.0, e.kind)
                raise
            try:
                text, n_in, n_out, finish = self._request(messages, model, worst_in)
            except _Retry as r:
                # A request that died after it was sent may still be billed: charge its worst
                # case so the budget stays an upper bound. Refused requests (429/5xx) are free.
                sent = r.failure.kind in ("timeout", "connection")
                charged = worst if sent else 0.0
                self.budget.settle(worst, charged)
                self._record(model.name, 0, 0, charged, r.failure.kind)
                spent_cost += charged
                self.backoff.failed(r.failure.kind, r.retry_after, r.failure.reason, attempt)
                if attempt == cfg.retries:
                    raise LLMFailure(
                        f"{r.failure.reason} (after {attempt + 1} attempts)",
                        r.failure.kind,
                        cost=spent_cost,
                    ) from None
                continue
            except LLMFailure as e:
                # An unreadable 200 may have been billed; a 4xx or a cancelled one was not.
                charged = worst if e.kind == "malformed" else 0.0
                self.budget.settle(worst, charged)
                self._record(model.name, 0, 0, charged, e.kind)
                if e.kind == "cancelled":
                    self.backoff.release()
                else:
                    self.backoff.done()
                e.cost = spent_cost + charged
                raise
            self.backoff.done()
            cost = model.cost(n_in, n_out)
            self.budget.settle(worst, cost)
            spent_in, spent_out, spent_cost = n_in, n_out, spent_cost + cost
            failure = _check_reply(text, cfg.max_reply_chars)
            self._record(model.name, n_in, n_out, cost, failure.kind if failure else None)
            if failure is not None:
                failure.cost = spent_cost
                failure.tokens = n_in + n_out
                raise failure
            return Completion(
                text=text,
                model=model.name,
                input_tokens=spent_in,
                output_tokens=spent_out,
                cost=spent_cost,
                attempts=attempt + 1,
                cut_off=finish == "length",
            )
        raise AssertionError("unreachable: the loop returns or raises")

    def usage(self) -> dict[str, dict[str, Any]]:
        """Per model: ``requests``, ``input_tokens``, ``output_tokens``, ``cost`` (dollars),
        ``failures`` (kind -> count) and ``failure_cost`` (kind -> dollars). A copy, safe to
        keep."""
        with self._lock:
            return {
                m: {**u, "failures": dict(u["failures"]), "failure_cost": dict(u["failure_cost"])}
                for m, u in self._usage.items()
            }

    def _request(
        self, messages: Sequence[dict[str, str]], model: ModelSpec, worst_in: int
    ) -> tuple[str, int, int, str]:
        import openai  # already imported by __init__: a dictionary lookup

        cfg = self.config
        try:
            with self._slots, scope(cfg.timeout, self.cancel):
                response = self._openai.chat.completions.create(
                    model=model.name,
                    messages=list(messages),  # type: ignore[arg-type]
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                )
        except openai.APITimeoutError:
            if self.cancel.is_set():
                raise LLMFailure("the run is stopping", "cancelled") from None
            raise _Retry(
                LLMFailure(
                    f"no complete reply within llm.timeout = {cfg.timeout:g} s "
                    "(connect plus the whole response)",
                    "timeout",
                )
            ) from None
        except openai.APIConnectionError as e:
            if self.cancel.is_set():
                raise LLMFailure("the run is stopping", "cancelled") from None
            if isinstance(e.__cause__, httpx2.ConnectError):
                raise _Retry(
                    LLMFailure(
                        f"cannot connect to {cfg.base_url}: {_one_line(e.__cause__)}", "unreachable"
                    )
                ) from None
            raise _Retry(LLMFailure(f"connection failed: {_one_line(e)}", "connection")) from None
        except openai.APIStatusError as e:
            code = e.status_code
            if code in RETRYABLE_STATUS:
                kind = "rate_limited" if code == 429 else "server_error"
                after = _retry_after(e.response.headers) if code in (429, 503) else None
                raise _Retry(LLMFailure(f"HTTP {code}: {_one_line(e)}", kind), after) from None
            raise LLMFailure(f"HTTP {code}: {_one_line(e)}", "http_error") from None
        except Exception as e:  # noqa: BLE001 - a non-JSON body, a broken proxy: never a crash
            raise LLMFailure(
                f"unreadable response: {type(e).__name__}: {_one_line(e)}", "malformed"
            ) from None
        try:
            choice = response.choices[0]
            text = choice.message.content
            finish = str(getattr(choice, "finish_reason", "") or "")
            usage = response.usage
            n_in = int(usage.prompt_tokens) if usage is not None else worst_in
            n_out = int(usage.completion_tokens) if usage is not None else None
        except Exception as e:  # noqa: BLE001 - a JSON body that is not a chat completion
            raise LLMFailure(
                f"the response is not a chat completion: {type(e).__name__}: {_one_line(e)}",
                "malformed",
            ) from None
        if text is not None and not isinstance(text, str):
            raise LLMFailure("the reply's content is not text", "malformed")
        text = text or ""
        if n_out is None:  # no usage reported: bound it by the reply's bytes
            n_out = len(text.encode("utf-8"))
        return text, n_in, n_out, finish

    def _record(self, model: str, n_in: int, n_out: int, cost: float, failure: str | None) -> None:
        with self._lock:
            u = self._usage.setdefault(model, empty_usage())
            if failure != "budget":  # a refused request was never sent
                u["requests"] += 1
            u["input_tokens"] += n_in
            u["output_tokens"] += n_out
            u["cost"] += cost
            if failure is not None:
                u["failures"][failure] = u["failures"].get(failure, 0) + 1
                u["failure_cost"][failure] = u["failure_cost"].get(failure, 0.0) + cost


def empty_usage() -> dict[str, Any]:
    """One model's usage before its first request (the shape :meth:`LLMClient.usage` gives)."""
    return {
        "requests": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
        "failures": {},
        "failure_cost": {},
    }


class _Retry(Exception):  # noqa: N818 - internal signal, never leaves the client
    def __init__(self, failure: LLMFailure, retry_after: float | None = None):
        super().__init__(failure.reason)
        self.failure = failure
        self.retry_after = retry_after


def _check_reply(text: str, max_chars: int) -> LLMFailure | None:
    if len(text) > max_chars:
        return LLMFailure(
            f"the reply has {len(text)} characters, more than llm.max_reply_chars = {max_chars}",
            "too_large",
            text,
        )
    if not text.strip():
        return LLMFailure("the reply is empty", "empty", text)
    return None


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def make_client(config: LLMConfig, budget: DollarBudget | None = None) -> LLMClient:
    """The client for ``config``; the only place the API key is read (from the environment).

    Args:
        config: a validated ``[llm]`` table with ``base_url`` set.
        budget: the run's shared dollar budget (``None``: no limit).
    """
    if not config.enabled:
        raise ValueError("llm.base_url is empty: the LLM operators are off")
    return LLMClient(config, os.environ.get(config.api_key_env) or NO_KEY, budget)
