"""The chat messages for LLM mutation and crossover: compact, and explicit about the reply.

A mutation prompt carries the task, the parent's code with its status and metrics, execution
feedback (why the parent or its recent children failed), a few inspirations from other niches
as diffs against the parent, and the niche directive: which region of the program to change
and how large an edit to make, so children spread over the archive instead of collapsing onto
the safest edit. A crossover prompt carries two parents' diffs against their common ancestor.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from archive.program import Program
from operators.base import Context
from operators.descriptors import regions
from operators.llm.config import LLMConfig

SYSTEM = (
    "You are an expert machine-learning research engineer taking part in an "
    "evolutionary search over programs. Each reply proposes one focused change that you "
    "expect to improve the program's score. Follow the reply format exactly."
)
FEEDBACK_ITEMS = 6
FEEDBACK_CHARS = 1500
DIFF_CHARS = 6000
"""Caps that keep a prompt compact: a tail of each feedback item, the head of each diff."""

FORMATS = {
    "definitions": (
        "Reply format: give every changed or new top-level definition IN FULL in ```python "
        "blocks: whole functions, whole classes (with every method), `NAME = value` constants, "
        "new imports. Each one replaces the program's definition of the same name; new names "
        "are added. To change a single method, put the comment `# replaces: ClassName.method` "
        "on the line above its `def`. Do not repeat unchanged definitions and never give part "
        "of a function."
    ),
    "search_replace": (
        "Reply format: one or more blocks\n<<<<<<< SEARCH\n(lines copied exactly from the "
        "program)\n=======\n(the new lines)\n>>>>>>> REPLACE\nEach SEARCH text is whole "
        "lines of the program, copied with their indentation, and must match exactly one "
        "place; keep it short but unique (add a neighbouring line if needed)."
    ),
    "whole_file": "Reply format: the complete new program in one ```python block.",
}
IDEAS_FIRST = (
    "Start your reply with one line `IDEA: <the change and why it should help>`, "
    "then implement exactly that idea."
)
BLOCK_RULE = (
    "Only code between the EVOLVE-BLOCK-START and EVOLVE-BLOCK-END comments may "
    "change; keep the markers."
)


def reply_rules(config: LLMConfig, context: Context) -> str:
    """The reply-format paragraph (plus the ideas-first and block rules when they apply)."""
    parts = []
    if config.ideas_first:
        parts.append(IDEAS_FIRST)
    parts.append(FORMATS[config.format])
    if context.block:
        parts.append(BLOCK_RULE)
    return "\n".join(parts)


def describe_program(p: Program) -> str:
    """One line: status, fitness with its uncertainty, mean metrics, niche."""
    parts = [f"status {p.status}"]
    if p.fitness is not None:
        std = f" ± {p.fitness_std:.4g}" if p.fitness_std else ""
        parts.append(f"fitness {p.fitness:.6g}{std}")
    metrics = p.metrics_mean()
    if metrics:
        parts.append("metrics " + ", ".join(f"{k}={v:.6g}" for k, v in sorted(metrics.items())))
    if p.reason and p.status != "ok":
        parts.append(f"reason: {' '.join(p.reason.split())[:300]}")
    niche = {k: v for k, v in p.descriptors.items() if k in ("region", "edit_size_bin")}
    if niche:
        parts.append("niche " + ", ".join(f"{k}={v}" for k, v in niche.items()))
    return "; ".join(parts)


def size_words(size_bin: int) -> str:
    """Words for an edit-size bin (0: none, 1: 1 node, 2: 2-3 nodes, 3: 4-7 nodes, ...)."""
    if size_bin <= 1:
        return "a single AST node (one constant, operator or name)"
    low, high = 2 ** (size_bin - 1), 2**size_bin - 1
    return f"about {low}-{high} AST nodes"


def niche_directive(niche: dict[str, Any] | None, seed_source: str) -> str:
    """The sentence that aims the child at a niche, e.g. region ``optimizer``, size bin 2."""
    if not niche:
        return ""
    parts = []
    region = niche.get("region")
    if region == "multi":
        parts.append("change code in two or more regions of the program")
    elif region not in (None, "none"):
        try:
            labels = regions(seed_source)
        except Exception:  # noqa: BLE001 - an unparsable seed only loses the name list
            labels = {}
        names = [k for k, v in labels.items() if v == region and not k.startswith("import:")]
        listed = f" (the code of {', '.join(names[:12])})" if names else ""
        parts.append(f"change the code in region '{region}'{listed}")
    if niche.get("edit_size_bin") is not None:
        parts.append(f"make an edit of {size_words(int(niche['edit_size_bin']))}")
    parts += [
        f"aim for {k} = {v}" for k, v in niche.items() if k not in ("region", "edit_size_bin")
    ]
    if not parts:
        return ""
    return (
        "Niche to fill (this cell of the archive is empty or weak, so explore it): "
        + "; ".join(parts)
        + "."
    )


def diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff, cut to :data:`DIFF_CHARS` with a note."""
    text = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name, n=2
        )
    )
    if not text:
        return "(no difference)"
    if len(text) > DIFF_CHARS:
        text = text[:DIFF_CHARS] + f"\n... ({len(text) - DIFF_CHARS} more characters of diff)\n"
    return text


def _feedback(items: Sequence[str]) -> str:
    out = []
    for item in list(items)[-FEEDBACK_ITEMS:]:
        text = item.strip()
        if len(text) > FEEDBACK_CHARS:
            text = "..." + text[-FEEDBACK_CHARS:]
        out.append(f"- {text}")
    return "\n".join(out)


def _code(source: str) -> str:
    return f"```python\n{source.rstrip()}\n```"


def _messages(user: list[str]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "\n\n".join(s for s in user if s)},
    ]


def mutation_messages(parent: Program, context: Context, config: LLMConfig) -> list[dict[str, str]]:
    """The chat messages asking for one improved child of ``parent``."""
    user = [
        f"## Task\n{context.description.strip() or '(no description given)'}",
        f"## Program ({describe_program(parent)})\n{_code(parent.source)}",
    ]
    if context.feedback:
        user.append(
            "## Execution feedback (the program and its recent failed variants)\n"
            + _feedback(context.feedback)
        )
    others = [p for p in context.archive_sample if p.id != parent.id][: config.inspirations]
    if others:
        shown = [
            f"### Inspiration {i} ({describe_program(p)})\n```diff\n"
            f"{diff(parent.source, p.source, 'program', f'inspiration {i}').rstrip()}\n```"
            for i, p in enumerate(others, 1)
        ]
        user.append(
            "## Inspirations from other niches (diffs against the program above)\n"
            + "\n".join(shown)
        )
    directive = niche_directive(context.niche, context.seed_source)
    user.append(
        "## Your change\nPropose one change that should improve the score. "
        + (directive + "\n" if directive else "\n")
        + reply_rules(config, context)
    )
    return _messages(user)


def crossover_messages(
    a: Program, b: Program, context: Context, config: LLMConfig
) -> list[dict[str, str]]:
    """The chat messages asking for a child of ``a`` that also keeps ``b``'s improvements."""
    ancestor = (
        context.ancestor_source if context.ancestor_source is not None else context.seed_source
    )
    user = [
        f"## Task\n{context.description.strip() or '(no description given)'}",
        "Two programs from different niches of the archive improved on a common ancestor "
        "in different ways. Combine them: write a child that keeps both sets of "
        "improvements.",
        f"## Parent A ({describe_program(a)}): its changes to the ancestor\n```diff\n"
        f"{diff(ancestor, a.source, 'ancestor', 'parent A').rstrip()}\n```",
        f"## Parent B ({describe_program(b)}): its changes to the ancestor\n```diff\n"
        f"{diff(ancestor, b.source, 'ancestor', 'parent B').rstrip()}\n```",
        f"## Parent A in full (your reply edits this program)\n{_code(a.source)}",
    ]
    if context.feedback:
        user.append("## Execution feedback\n" + _feedback(context.feedback))
    directive = niche_directive(context.niche, context.seed_source)
    user.append(
        "## Your change\nEdit parent A so that it also has parent B's improvements "
        "(resolve conflicts sensibly). "
        + (directive + "\n" if directive else "\n")
        + reply_rules(config, context)
    )
    return _messages(user)
