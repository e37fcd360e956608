"""``llm_mutation`` and ``llm_crossover``: operators that ask a model for a child.

Both are slow (a request takes seconds), so ``slow = True`` tells the loop to call
:meth:`~operators.base.Operator.propose` from a worker thread; ``propose`` is thread-safe. It
draws from the caller's ``rng`` once, first (the model choice), so a run stays reproducible in
which model was asked even though replies are not.

Whatever goes wrong (the request, the edit, the validation), ``propose`` raises
:class:`LLMNoChild`, a :class:`~operators.errors.NoChild` carrying the failure's ``kind`` and
the tokens and dollars the attempt cost; ``failures_by_kind`` counts them.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import numpy as np

from archive.program import Program
from operators.base import Child, Context, Operator
from operators.errors import NoChild, ValidationError
from operators.llm.client import (
    REPLY_KEPT_CHARS,
    DollarBudget,
    LLMClient,
    LLMFailure,
    make_client,
)
from operators.llm.config import LLMConfig
from operators.llm.edits import EditError, apply_reply, parse_idea
from operators.llm.prompts import crossover_messages, mutation_messages
from operators.parsed import parsed
from operators.statements import units
from operators.validate import validate_child

DESCRIPTION_CHARS = 160
_PARSE_LOCK = threading.Lock()
"""Serialises the lazy analyses of the :class:`~operators.parsed.Parsed` objects that LLM
workers share (a parent is one cached object): its libcst module, layout and statement units
are computed on first use and stored on the object without a lock, so two workers could compute
the same analysis twice and each use its own copy. The cache's lookups have their own lock
(``_CACHE_LOCK`` in :mod:`operators.parsed`); parsing holds the GIL anyway, so taking turns
costs nothing."""
RECENT_FAILURES = 20
"""Failure reasons kept per operator (``recent_failures``), newest last."""


@dataclass(frozen=True)
class LLMChild(Child):
    """A :class:`~operators.base.Child` made by a model, with what it cost.

    Attributes:
        idea: the idea the model stated first (ideas-first mode; else "").
        tokens: input plus output tokens of the request (failed attempts included).
        cost: dollars of the request (failed attempts included).
        model: the model that answered.
    """

    idea: str = ""
    tokens: int = 0
    cost: float = 0.0
    model: str = ""


class LLMNoChild(NoChild):
    """No child from an LLM operator.

    Attributes:
        kind: why: an :class:`LLMFailure` kind, ``edit``, or ``invalid_<validation kind>``.
        detail: for ``edit``, the :class:`EditError` kind (``no_match``, ``partial``...).
        tokens, cost: what the attempt spent (tokens; dollars).
        reply: the start of the model's reply, when one came (at most
            :data:`~operators.llm.client.REPLY_KEPT_CHARS` characters).
        model: the model asked.
    """

    def __init__(
        self,
        reason: str,
        kind: str,
        tokens: int = 0,
        cost: float = 0.0,
        *,
        detail: str = "",
        reply: str = "",
        model: str = "",
    ):
        super().__init__(reason)
        self.kind = kind
        self.detail = detail
        self.tokens = tokens
        self.cost = cost
        self.reply = reply[:REPLY_KEPT_CHARS]
        self.model = model


class _LLMOperator(Operator):
    slow = True

    def __init__(self, client: LLMClient, config: LLMConfig):
        self.client = client
        self.config = config
        self._lock = threading.Lock()
        self.failures_by_kind: dict[str, int] = {}
        self.recent_failures: deque[str] = deque(maxlen=RECENT_FAILURES)

    @abstractmethod
    def _messages(self, parents: Sequence[Program], context: Context) -> list[dict[str, str]]:
        """The chat messages asking for a child of ``parents``."""

    def propose(
        self, parents: Sequence[Program], context: Context, rng: np.random.Generator
    ) -> Child:
        """Ask a model for a child of ``parents`` (see the module docstring).

        Raises:
            LLMNoChild: the request, the edit or the validation failed.
        """
        self._check_arity(parents)
        model = self.client.pick_model(rng)
        with _PARSE_LOCK:
            messages = self._messages(parents, context)
        try:
            reply = self.client.complete(messages, model)
        except LLMFailure as e:
            self._fail(
                f"{self.name}: {e.kind}: {e.reason}",
                e.kind,
                e.tokens,
                e.cost,
                reply=e.reply,
                model=model.name,
            )
        tokens = reply.input_tokens + reply.output_tokens
        said = {"reply": reply.text, "model": reply.model}
        parent = parents[0].source
        idea = parse_idea(reply.text) if self.config.ideas_first else ""
        try:
            with _PARSE_LOCK:
                source = apply_reply(reply.text, parent, self.config.format, block=context.block)
                child_id = validate_child(source, parent, block=context.block)
                summary = "" if idea else change_summary(parent, source)
        except EditError as e:
            reason, detail = e.reason, e.kind
            if reply.cut_off and e.kind in ("no_code", "truncated", "syntax"):
                reason = (
                    f"the reply was cut off at llm.max_tokens = {self.config.max_tokens} tokens "
                    f"before its edit was whole ({e.reason}); raise llm.max_tokens or use a "
                    "shorter reply format"
                )
                detail = "truncated"
            self._fail(
                f"{self.name}: the reply does not apply: {reason}",
                "edit",
                tokens,
                reply.cost,
                detail=detail,
                **said,
            )
        except ValidationError as e:
            self._fail(
                f"{self.name}: invalid child: {e}",
                f"invalid_{e.kind}",
                tokens,
                reply.cost,
                detail=e.kind,
                **said,
            )
        line = " ".join(idea.split()) if idea else summary
        if len(line) > DESCRIPTION_CHARS:
            line = line[: DESCRIPTION_CHARS - 3] + "..."
        return LLMChild(
            source=source,
            operator=self.name,
            parents=tuple(p.id for p in parents[: self.arity]),
            description=line,
            id=child_id,
            idea=idea,
            tokens=tokens,
            cost=reply.cost,
            model=reply.model,
        )

    def _fail(
        self, reason: str, kind: str, tokens: int = 0, cost: float = 0.0, **more: str
    ) -> NoReturn:
        with self._lock:
            self.failures_by_kind[kind] = self.failures_by_kind.get(kind, 0) + 1
            self.recent_failures.append(reason)
        raise LLMNoChild(reason, kind, tokens, cost, **more)


class LLMMutation(_LLMOperator):
    """A child of one parent, aimed at the context's niche, from a model's reply."""

    name = "llm_mutation"
    arity = 1

    def _messages(self, parents: Sequence[Program], context: Context) -> list[dict[str, str]]:
        return mutation_messages(parents[0], context, self.config)


class LLMCrossover(_LLMOperator):
    """A child of the first parent that also keeps the second parent's improvements."""

    name = "llm_crossover"
    arity = 2

    def _messages(self, parents: Sequence[Program], context: Context) -> list[dict[str, str]]:
        return crossover_messages(parents[0], parents[1], context, self.config)


def change_summary(parent_source: str, child_source: str) -> str:
    """One line naming the top-level statements the child changed, added and removed."""
    old = {u.key: u for u in units(parsed(parent_source))}
    new = {u.key: u for u in units(parsed(child_source))}

    def show(keys: list[str]) -> str:
        return ", ".join(k.removeprefix("import:") for k in keys)

    changed = [k for k in new if k in old and not new[k].same(old[k])]
    added = [k for k in new if k not in old]
    removed = [k for k in old if k not in new]
    parts = [
        f"{label} {show(keys)}"
        for label, keys in (("changed", changed), ("added", added), ("removed", removed))
        if keys
    ]
    return "; ".join(parts) or "reformatted"


def build_llm_operators(
    config: LLMConfig,
    weights: dict[str, float],
    *,
    client: LLMClient | None = None,
    budget: DollarBudget | None = None,
) -> list[tuple[Operator, float]]:
    """The LLM operators with a positive weight, sharing one client (none when LLM is off).

    Args:
        config: the validated ``[llm]`` table.
        weights: operator name -> weight (``llm_mutation``, ``llm_crossover``; other names are
            ignored).
        client: the client to share (default: :func:`make_client` of ``config`` and
            ``budget``).
        budget: the run's dollar budget, used when ``client`` is not given.
    """
    if not config.enabled:
        return []
    chosen = [(cls, float(weights.get(cls.name, 0.0))) for cls in (LLMMutation, LLMCrossover)]
    chosen = [(cls, w) for cls, w in chosen if w > 0]
    if not chosen:
        return []
    client = client if client is not None else make_client(config, budget)
    return [(cls(client, config), w) for cls, w in chosen]
