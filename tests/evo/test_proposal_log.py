"""proposals.jsonl stays bounded and readable; LLM usage adds up across the processes of a
resumed run; the breaker counts failures in a row, not in total."""

from __future__ import annotations

import json

from evo import proposal_log
from evo.breaker import CircuitBreaker
from evo.proposal_log import ProposalLog, outcome_of, read_proposals, summarise
from evo.rundir import merge_usage


def test_the_log_rotates_and_is_read_back_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(proposal_log, "MAX_BYTES", 2000)
    log = ProposalLog(tmp_path)
    for i in range(40):
        log.write(
            operator="llm_mutation",
            outcome="did not apply",
            kind="edit",
            reason=f"r{i}",
            reply="x" * 10_000,
            seconds=1.0,
        )
    current = tmp_path / "proposals.jsonl"
    older = tmp_path / "proposals.1.jsonl"
    assert current.exists() and older.exists()
    assert current.stat().st_size < 2000 + 5000 and older.stat().st_size < 2000 + 5000
    rows = read_proposals(tmp_path)
    reasons = [int(r["reason"][1:]) for r in rows]
    assert reasons == sorted(reasons) and reasons[-1] == 39 and len(rows) < 40
    assert all(len(r["reply"]) == proposal_log.REPLY_CHARS for r in rows)
    with current.open("a") as f:  # a torn last line (a crash mid-write) is skipped
        f.write('{"outcome": "new ch')
    assert len(read_proposals(tmp_path)) == len(rows)
    s = summarise(rows)
    assert s["outcomes"] == {"did not apply": len(rows)} and s["seconds_per_proposal"] == 1.0


def test_outcome_classes_cover_every_failure_kind():
    assert outcome_of("child") == "new child"
    assert outcome_of("timeout") == outcome_of("unreachable") == "request failed"
    assert outcome_of("edit", "partial") == outcome_of("edit", "ambiguous") == "did not apply"
    assert outcome_of("edit", "syntax") == outcome_of("empty") == "unparsable"
    assert (
        outcome_of("edit", "outside_block") == outcome_of("invalid_markers") == "outside the block"
    )
    assert outcome_of("invalid_noop") == "no change"


def test_the_breaker_counts_failures_in_a_row_and_trips_at_once_when_unreachable():
    b = CircuitBreaker(3, "http://h/v1")
    for kind in ("edit", "timeout", "child", "edit", "duplicate", "cancelled", "budget"):
        b.record(kind, "why")
    assert not b.tripped  # a new child reset the count; cancelled and budget do not count
    b.record("empty", "the reply is empty")
    assert "3 proposals in a row" in b.tripped and "unparsable (empty)" in b.tripped
    u = CircuitBreaker(0, "http://h/v1")
    u.record("unreachable", "connection refused")
    assert "unreachable" in u.tripped and "llm.base_url" in u.tripped


def test_llm_usage_adds_up_across_processes_of_a_run():
    a = {
        "m": {
            "requests": 2,
            "input_tokens": 10,
            "output_tokens": 5,
            "cost": 0.5,
            "failures": {"timeout": 1},
            "failure_cost": {"timeout": 0.25},
        }
    }
    b = {
        "m": {
            "requests": 1,
            "input_tokens": 4,
            "output_tokens": 1,
            "cost": 0.1,
            "failures": {"timeout": 2, "edit": 1},
            "failure_cost": {"timeout": 0.1},
        },
        "n": {
            "requests": 1,
            "input_tokens": 1,
            "output_tokens": 1,
            "cost": 0.0,
            "failures": {},
            "failure_cost": {},
        },
    }
    m = merge_usage(json.loads(json.dumps(a)), b)
    assert m["m"]["requests"] == 3 and m["m"]["cost"] == 0.6
    assert m["m"]["failures"] == {"timeout": 3, "edit": 1}
    assert m["m"]["failure_cost"] == {"timeout": 0.35}
    assert m["n"]["requests"] == 1 and a["m"]["requests"] == 2  # inputs untouched
