"""What every LLM proposal came to, in a bounded log a user can read: ``proposals.jsonl``.

One JSON object per line: ``time`` (UTC, ISO 8601), ``operator``, ``model``, ``outcome`` (a
class from :data:`OUTCOMES`), ``kind`` and ``detail`` (the failure as the operator reported
it), ``reason`` (one line), ``reply`` (the start of the model's reply, at most
:data:`REPLY_CHARS` characters; failed proposals only), ``tokens``, ``cost`` (dollars) and
``child`` (the new child's id). When the file passes :data:`MAX_BYTES` it becomes
``proposals.1.jsonl`` (the one before is dropped), so the log never grows past twice that.

Example:
    >>> outcome_of("edit", "partial")
    'did not apply'
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MAX_BYTES = 2_000_000
"""Size at which ``proposals.jsonl`` is rotated."""
REPLY_CHARS = 4000
"""Characters of a failed proposal's reply kept in the log."""

OUTCOMES = (
    "new child",
    "duplicate",
    "no change",
    "unparsable",
    "did not apply",
    "outside the block",
    "request failed",
    "budget",
    "cancelled",
)
"""Outcome classes, in the order tables show them."""

REQUEST_KINDS = frozenset(
    {"rate_limited", "server_error", "timeout", "unreachable", "connection", "http_error"}
)
"""Failure kinds where no reply came back."""


def outcome_of(kind: str, detail: str = "") -> str:
    """The outcome class of a proposal from its failure ``kind`` and ``detail`` (``kind``
    ``"child"`` for a new child, ``"duplicate"`` for a child the run had seen)."""
    if kind in ("child", "duplicate", "budget", "cancelled"):
        return {"child": "new child"}.get(kind, kind)
    if kind in REQUEST_KINDS:
        return "request failed"
    if kind in ("malformed", "empty", "too_large", "truncated"):
        return "unparsable"
    if kind == "edit":
        if detail in ("no_code", "syntax", "truncated"):
            return "unparsable"
        return "outside the block" if detail == "outside_block" else "did not apply"
    if kind.startswith("invalid_"):
        what = kind.removeprefix("invalid_")
        if what == "noop":
            return "no change"
        return "unparsable" if what == "syntax" else "outside the block"
    return "request failed"


class ProposalLog:
    """Appends proposals to ``run_dir/proposals.jsonl`` (thread-safe), rotating it."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "proposals.jsonl"
        self._lock = threading.Lock()

    def write(self, **record: Any) -> None:
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
        if "reply" in record:
            record["reply"] = str(record["reply"])[:REPLY_CHARS]
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                if self.path.exists() and self.path.stat().st_size > MAX_BYTES:
                    self.path.replace(self.path.with_name("proposals.1.jsonl"))
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(line)
            except OSError:
                pass  # a full disk must not stop the search; the counters still count


def read_proposals(run_dir: Path) -> list[dict[str, Any]]:
    """Every logged proposal still on disk, oldest first (unreadable lines skipped)."""
    out = []
    for name in ("proposals.1.jsonl", "proposals.jsonl"):
        path = Path(run_dir) / name
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"proposals": n, "outcomes": {class: n}, "last_reason": {class: reason},
    "seconds_per_proposal": mean or None, "tokens": total}`` over ``records``."""
    outcomes = Counter(r.get("outcome", "?") for r in records)
    last = {}
    for r in records:
        if r.get("outcome") != "new child" and r.get("reason"):
            last[r["outcome"]] = r["reason"]
    secs = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    return {
        "proposals": len(records),
        "outcomes": {k: outcomes[k] for k in (*OUTCOMES, "?") if outcomes.get(k)},
        "last_reason": last,
        "seconds_per_proposal": sum(secs) / len(secs) if secs else None,
        "tokens": sum(int(r.get("tokens") or 0) for r in records),
    }


def llm_summary(run_dir: Path) -> dict[str, Any] | None:
    """What a run's LLM operators did, from ``proposals.jsonl`` and ``counters.json``:
    :func:`summarise` of the logged proposals plus ``usage`` (per model: requests, tokens,
    ``cost`` and ``failure_cost`` per failure kind, dollars) and ``failed_cost`` (dollars of
    proposals that made no child). ``None`` when the run never asked a model."""
    records = read_proposals(run_dir)
    try:
        counters = json.loads((Path(run_dir) / "counters.json").read_text())
    except (OSError, ValueError):
        counters = {}
    usage = counters.get("llm_usage") or {}
    if not records and not usage:
        return None
    return {
        **summarise(records),
        "usage": usage,
        "failed_cost": float(counters.get("failed_proposal_cost") or 0.0),
    }


def spend_lines(usage: dict[str, Any]) -> list[str]:
    """One line per model: its spend and requests, and the spend and count per failure kind."""
    out = []
    for model, u in sorted(usage.items()):
        fails = u.get("failures") or {}
        fcost = u.get("failure_cost") or {}
        by_kind = ", ".join(
            f"{k} {n}" + (f" (${fcost[k]:.4f})" if fcost.get(k) else "")
            for k, n in sorted(fails.items())
        )
        out.append(
            f"{model}: ${u.get('cost', 0.0):.4f} over {u.get('requests', 0)} requests "
            f"({u.get('input_tokens', 0)} in / {u.get('output_tokens', 0)} out tokens)"
            + (f"; requests that failed: {by_kind}" if by_kind else "")
        )
    return out


def outcomes_line(summary: dict[str, Any]) -> str:
    """One line: ``40 proposals: new child 3, duplicate 2, did not apply 20, ...``."""
    n = summary["proposals"]
    parts = ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items())
    return f"{n} proposal{'s' if n != 1 else ''}" + (f": {parts}" if parts else "")


__all__ = [
    "OUTCOMES",
    "llm_summary",
    "spend_lines",
    "ProposalLog",
    "outcome_of",
    "outcomes_line",
    "read_proposals",
    "summarise",
]
