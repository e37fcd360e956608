"""The ``[llm]`` table of a run's config: endpoint, models and prices, timeouts, reply format.

Every key has a default, so ``{}`` is valid: with ``base_url = ""`` the LLM operators are off.
The API key itself never appears here: only the *name* of the environment variable that holds
it, read once when the client is created (:func:`operators.llm.client.make_client`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

FORMATS = ("definitions", "search_replace", "whole_file")
"""Reply formats; see :mod:`operators.llm.edits`."""


class LLMConfigError(ValueError):
    """An ``[llm]`` key is unusable; the one-line message names ``llm.KEY`` and what is allowed."""


@dataclass(frozen=True)
class ModelSpec:
    """One model the operators may call.

    Attributes:
        name: the model name the endpoint knows (``gpt-4.1-mini``, ``qwen2.5-coder:7b``...).
        weight: relative probability of picking this model for a request (> 0).
        price_input: dollars per 1M input (prompt) tokens (0 for a local server).
        price_output: dollars per 1M output (completion) tokens.
    """

    name: str
    weight: float = 1.0
    price_input: float = 0.0
    price_output: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Dollars for a request with these token counts."""
        return (input_tokens * self.price_input + output_tokens * self.price_output) / 1e6


@dataclass(frozen=True)
class LLMConfig:
    """The validated ``[llm]`` table. Build it with :meth:`from_dict`.

    Keys (TOML ``[llm]``, every one optional):

    - ``base_url`` (str, ``""``): an OpenAI-compatible endpoint, e.g.
      ``https://api.openai.com/v1``, ``http://localhost:8000/v1`` (vLLM),
      ``http://localhost:11434/v1`` (Ollama), ``http://localhost:8080/v1`` (llama.cpp server).
      Empty: the LLM operators are off.
    - ``models`` (list, ``[]``): model names (``["gpt-4.1-mini"]``) or tables
      ``{name, weight = 1.0, price_input = 0.0, price_output = 0.0}``; prices in dollars per
      1M tokens; a request picks a model with probability proportional to ``weight``.
      Required when ``base_url`` is set.
    - ``api_key_env`` (str, ``"OPENAI_API_KEY"``): the environment variable holding the key.
      It is read only when the client is created and never written anywhere; when unset, a
      placeholder is sent (fine for local servers that need no key).
    - ``temperature`` (float, ``0.8``): sampling temperature, 0-2.
    - ``max_tokens`` (int, ``4096``): cap on reply tokens per request (also the worst case
      reserved against the dollar budget).
    - ``timeout`` (float, ``120.0``): seconds per request.
    - ``retries`` (int, ``4``): extra attempts after a 429, 5xx, timeout or dropped connection.
    - ``backoff`` (float, ``1.0``): base delay in seconds of the exponential backoff
      (``backoff * 2**attempt``, with jitter).
    - ``max_backoff`` (float, ``60.0``): cap on one delay, a server's ``Retry-After`` included.
    - ``concurrency`` (int, ``4``): requests in flight at once, over all operators.
    - ``format`` (str, ``"definitions"``): reply format: ``"definitions"`` (whole named
      definitions swapped in with libcst), ``"search_replace"`` (SEARCH/REPLACE blocks) or
      ``"whole_file"`` (the whole new program).
    - ``ideas_first`` (bool, ``false``): the model states a one-line idea before the code; the
      idea is stored with the child.
    - ``max_reply_chars`` (int, ``200000``): a longer reply is a failed proposal.
    - ``inspirations`` (int, ``2``): programs from other niches shown in the mutation prompt.
    - ``max_failures`` (int, ``20``): the circuit breaker: after this many LLM proposals in a
      row gave no new child (any reason: no reply, an unusable reply, an edit that did not
      apply, a duplicate), the run stops with one line naming the endpoint, the failure
      class and the last error. An unreachable endpoint (connection refused, unknown host)
      stops it after one proposal's retries. ``0``: never stop for this.
    - ``max_outage`` (float, ``300.0``): the circuit breaker's clock: when the endpoint has
      answered no request for this many seconds (timeouts, 429s, 5xx, dropped connections in
      a row, the run-wide backoff included), the run stops the same way. ``0``: never.
    - ``max_proposals`` (int, ``0``): the LLM operators stop after this many proposals (to
      try a model on a fixed number of requests); when they are the only operators the run
      stops. ``0``: no limit.
    """

    base_url: str = ""
    models: tuple[ModelSpec, ...] = ()
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.8
    max_tokens: int = 4096
    timeout: float = 120.0
    retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 60.0
    concurrency: int = 4
    format: str = "definitions"
    ideas_first: bool = False
    max_reply_chars: int = 200_000
    inspirations: int = 2
    max_failures: int = 20
    max_outage: float = 300.0
    max_proposals: int = 0

    @property
    def enabled(self) -> bool:
        """True when a ``base_url`` is set: the LLM operators can run."""
        return bool(self.base_url)

    def model(self, name: str) -> ModelSpec:
        """The spec of the model called ``name``."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The table with every default written out (for the run's resolved ``config.toml``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "models":
                value = [
                    {
                        "name": m.name,
                        "weight": m.weight,
                        "price_input": m.price_input,
                        "price_output": m.price_output,
                    }
                    for m in value
                ]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LLMConfig:
        """Validate a TOML ``[llm]`` table.

        Raises:
            LLMConfigError: one line naming ``llm.KEY`` and the allowed values.

        Example:
            >>> LLMConfig.from_dict({}).enabled
            False
            >>> LLMConfig.from_dict({"base_url": "http://localhost:8000/v1",
            ...                      "models": ["qwen"]}).models[0].name
            'qwen'
        """
        if not isinstance(d, dict):
            raise LLMConfigError('llm: must be a table of keys, e.g. [llm] base_url = "..."')
        known = [f.name for f in fields(cls)]
        for key in d:
            if key not in known:
                raise LLMConfigError(f"llm.{key}: unknown key; allowed keys: {', '.join(known)}")
        kw: dict[str, Any] = {}
        kw["base_url"] = _str(d, "base_url", "").strip()
        kw["models"] = _models(d.get("models", []))
        kw["api_key_env"] = _str(d, "api_key_env", "OPENAI_API_KEY")
        if not kw["api_key_env"].replace("_", "").isalnum():
            raise LLMConfigError(
                "llm.api_key_env: must be an environment variable name such as "
                "OPENAI_API_KEY (the name, never the key itself)"
            )
        kw["temperature"] = _number(d, "temperature", 0.8, 0.0, 2.0)
        kw["max_tokens"] = _int(d, "max_tokens", 4096, 1)
        kw["timeout"] = _number(d, "timeout", 120.0, 0.001, None, open_low=True)
        kw["retries"] = _int(d, "retries", 4, 0)
        kw["backoff"] = _number(d, "backoff", 1.0, 0.0, None)
        kw["max_backoff"] = _number(d, "max_backoff", 60.0, 0.0, None)
        kw["concurrency"] = _int(d, "concurrency", 4, 1)
        kw["format"] = _str(d, "format", "definitions")
        if kw["format"] not in FORMATS:
            raise LLMConfigError(
                f"llm.format: {kw['format']!r} is not a reply format; "
                f"choose one of {', '.join(FORMATS)}"
            )
        ideas = d.get("ideas_first", False)
        if not isinstance(ideas, bool):
            raise LLMConfigError(f"llm.ideas_first: must be true or false, got {ideas!r}")
        kw["ideas_first"] = ideas
        kw["max_reply_chars"] = _int(d, "max_reply_chars", 200_000, 1)
        kw["inspirations"] = _int(d, "inspirations", 2, 0)
        kw["max_failures"] = _int(d, "max_failures", 20, 0)
        kw["max_outage"] = _number(d, "max_outage", 300.0, 0.0, None)
        kw["max_proposals"] = _int(d, "max_proposals", 0, 0)
        if kw["base_url"] and not kw["models"]:
            raise LLMConfigError(
                "llm.models: give at least one model when llm.base_url is set, "
                'e.g. models = ["gpt-4.1-mini"]'
            )
        if kw["base_url"] and not kw["base_url"].startswith(("http://", "https://")):
            raise LLMConfigError(
                f"llm.base_url: {kw['base_url']!r} must start with http:// or "
                "https://, e.g. http://localhost:8000/v1"
            )
        return cls(**kw)


def _str(d: dict[str, Any], key: str, default: str) -> str:
    value = d.get(key, default)
    if not isinstance(value, str):
        raise LLMConfigError(f"llm.{key}: must be a string, got {value!r}")
    return value


def _number(
    d: dict[str, Any],
    key: str,
    default: float,
    low: float,
    high: float | None,
    open_low: bool = False,
    where: str = "",
) -> float:
    value = d.get(key, default)
    name = where or f"llm.{key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LLMConfigError(f"{name}: must be a number, got {value!r}")
    too_low = value <= low if open_low else value < low
    if too_low or (high is not None and value > high):
        bound = f"> {low}" if open_low else f">= {low}"
        allowed = f"between {low} and {high}" if high is not None else bound
        raise LLMConfigError(f"{name}: {value!r} is out of range; allowed: {allowed}")
    return float(value)


def _int(d: dict[str, Any], key: str, default: int, low: int) -> int:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise LLMConfigError(f"llm.{key}: must be an integer >= {low}, got {value!r}")
    return value


def _models(raw: Any) -> tuple[ModelSpec, ...]:
    if not isinstance(raw, list):
        raise LLMConfigError(
            "llm.models: must be a list of model names or of tables "
            "{name, weight, price_input, price_output}"
        )
    out: list[ModelSpec] = []
    for i, item in enumerate(raw):
        where = f"llm.models[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise LLMConfigError(
                f"{where}: must be a model name or a table "
                "{name, weight, price_input, price_output}"
            )
        allowed = ("name", "weight", "price_input", "price_output")
        for key in item:
            if key not in allowed:
                raise LLMConfigError(
                    f"{where}.{key}: unknown key; allowed keys: {', '.join(allowed)}"
                )
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise LLMConfigError(f"{where}.name: must be a non-empty model name")
        if any(m.name == name for m in out):
            raise LLMConfigError(f"{where}.name: model {name!r} is listed twice")
        weight = _number(item, "weight", 1.0, 0.0, None, open_low=True, where=f"{where}.weight")
        p_in = _number(item, "price_input", 0.0, 0.0, None, where=f"{where}.price_input")
        p_out = _number(item, "price_output", 0.0, 0.0, None, where=f"{where}.price_output")
        out.append(ModelSpec(name=name, weight=weight, price_input=p_in, price_output=p_out))
    return tuple(out)
