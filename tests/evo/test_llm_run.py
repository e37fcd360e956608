"""A full `evo run` with LLM operators only, through our OpenAI-compatible server on loopback,
where every fault the client must survive happens at least once."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import evo
from evo.proposals import STRUCTURAL
from tests.evo.loop_helpers import search_config
from tests.llm_server import DROP, NOT_JSON, LLMServer, Reply, Slow, Status

KEY = "sk-test-evo-4f1c9a77e2b04d6f8a1b"  # what a user's key looks like; must leak nowhere
REPO = Path(__file__).resolve().parents[2]

FAULTS = [
    Status(429, retry_after=0.2),
    Status(500),
    Slow(3.0),  # longer than llm.timeout
    DROP,
    NOT_JSON,
    "",  # empty content
    "<<<<<<< SEARCH\nTHIS_LINE_IS_NOT_IN_PACK = 1\n=======\nX = 2\n>>>>>>> REPLACE\n",
    "x" * 1_000_000,  # a 1 MB reply
]


class Script:
    """The faults first (one each), then real edits: a new value of one ring constant each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults = list(FAULTS)
        self.values = itertools.count(1)

    def __call__(self, request: dict) -> object:
        with self.lock:
            if self.faults:
                return self.faults.pop(0)
            i = next(self.values)
        radius = 0.30 + (i % 17) * 0.006
        phase = (i // 17) * 0.05
        return Reply(
            "IDEA: move the outer ring\n```python\n"
            f"OUTER_RADIUS = {radius:.3f}  # distance of the outer ring\n"
            f"OUTER_PHASE = {phase:.3f}\n```\n",
            prompt_tokens=1000,
            completion_tokens=50,
        )


def test_llm_only_run_survives_every_fault_and_never_writes_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("EVO_TEST_LLM_KEY", KEY)
    script = Script()
    run_dir = tmp_path / "run"
    with LLMServer(script) as server:
        cfg = search_config("circle_packing", run_dir, 12)
        for name in STRUCTURAL:
            cfg["operators"][name] = 0.0
        cfg["operators"]["llm_mutation"] = 1.0
        cfg["operators"]["llm_crossover"] = 0.0
        cfg["llm"] = {
            "base_url": server.base_url,
            "api_key_env": "EVO_TEST_LLM_KEY",
            "models": [{"name": "test-model", "price_input": 1.0, "price_output": 2.0}],
            "timeout": 1.0,
            "retries": 0,
            "backoff": 0.05,
            "max_backoff": 0.5,
            "concurrency": 2,
            "ideas_first": True,
        }
        evo.config.validate(cfg)
        summary = evo.Search(cfg, progress=False).run()
        requests = list(server.requests)

    assert summary.evaluations == 12 and summary.stopped == "evaluation budget reached"
    assert not script.faults, "every scripted fault was served"
    counts = summary.operators["llm_mutation"]
    failed = {k: v for k, v in counts.items() if k.startswith(("no_child", "rejected"))}
    # each fault is a failed proposal, counted by kind in the summary
    for kind in (
        "rate_limited",
        "server_error",
        "timeout",
        "connection",
        "malformed",
        "empty",
        "edit",
        "too_large",
    ):
        assert any(kind in k for k in failed), (kind, failed)
    assert counts.get("evaluated", 0) >= 1
    store = evo.open_run(run_dir)
    llm = [p for p in store.programs.values() if p.operator == "llm_mutation"]
    assert llm and all(p.idea.startswith("move the outer ring") for p in llm)
    assert all(
        p.tokens == 1050 and abs(p.cost - (1000 * 1.0 + 50 * 2.0) / 1e6) < 1e-12 for p in llm
    )
    status = json.loads((run_dir / "counters.json").read_text())
    assert status["llm_usage"]["test-model"]["requests"] == len(requests)
    # The key went out only in the Authorization header...
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in requests)
    assert all(KEY.encode() not in r.raw for r in requests)
    # ...and is in no file of the run dir.
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
