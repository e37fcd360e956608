"""LLMClient against the loopback server with the real openai package: retries, Retry-After,
bad replies, usage and cost, the dollar budget under concurrency, and where the key goes."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from operators.llm import DollarBudget, LLMClient, LLMConfig, LLMFailure, make_client
from tests.llm_server import DROP, NOT_JSON, LLMServer, Reply, Slow, Status

MESSAGES = [{"role": "user", "content": "improve the program"}]


def config(server: LLMServer, **kw) -> LLMConfig:
    table = {
        "base_url": server.base_url,
        "timeout": 1.0,
        "retries": 4,
        "backoff": 0.01,
        "max_backoff": 3.0,
        "api_key_env": "EVO_TEST_LLM_KEY",
        "models": [{"name": "m", "price_input": 2.0, "price_output": 4.0}],
        **kw,
    }
    return LLMConfig.from_dict(table)


def client(server: LLMServer, budget: DollarBudget | None = None, **kw) -> LLMClient:
    cfg = config(server, **kw)
    return make_client(cfg, budget)


def test_transient_faults_are_retried_until_a_reply():
    script = [Status(500), Status(502), DROP, Slow(3.0), Status(504), "the reply"]
    with LLMServer(script) as server:
        c = client(server, retries=5)
        out = c.complete(MESSAGES, c.config.models[0])
    assert out.text == "the reply" and out.attempts == 6
    assert len(server.requests) == 6
    u = c.usage()["m"]
    assert u["requests"] == 6
    assert u["failures"] == {"server_error": 3, "connection": 1, "timeout": 1}


@pytest.mark.parametrize("code, wait", [(429, 1.0), (503, 0.5)])
def test_retry_after_is_honoured(code, wait):
    with LLMServer([Status(code, retry_after=wait), "ok"]) as server:
        c = client(server)
        out = c.complete(MESSAGES, c.config.models[0])
    assert out.text == "ok"
    first, second = server.requests
    waited = second.at - first.at
    # At least the server's wait (the base backoff is 0.01 s), plus at most 10 % jitter.
    assert wait <= waited < wait * 1.1 + 0.3
    kind = "rate_limited" if code == 429 else "server_error"
    assert c.usage()["m"]["failures"] == {kind: 1}


def test_retry_after_is_capped_by_max_backoff():
    with LLMServer([Status(429, retry_after=30), "ok"]) as server:
        c = client(server, max_backoff=0.2)
        t = time.monotonic()
        assert c.complete(MESSAGES, c.config.models[0]).text == "ok"
    assert time.monotonic() - t < 2.0


def test_retries_run_out_with_the_last_failure():
    with LLMServer([Status(500)] * 3) as server:
        c = client(server, retries=2)
        with pytest.raises(LLMFailure) as err:
            c.complete(MESSAGES, c.config.models[0])
    assert err.value.kind == "server_error" and "after 3 attempts" in err.value.reason
    assert len(server.requests) == 3 and server.exhausted == 0


@pytest.mark.parametrize(
    "item, kind",
    [
        (Status(400, body='{"error": {"message": "bad model"}}'), "http_error"),
        (NOT_JSON, "malformed"),
        (Status(200, body='{"not": "a chat completion"}'), "malformed"),
        ("", "empty"),
        ("   \n", "empty"),
        ("x" * 1_000_000, "too_large"),
    ],
)
def test_bad_replies_fail_at_once_without_retry(item, kind):
    with LLMServer([item, "never asked"]) as server:
        c = client(server)
        with pytest.raises(LLMFailure) as err:
            c.complete(MESSAGES, c.config.models[0])
    assert err.value.kind == kind and "\n" not in str(err.value)
    assert len(server.requests) == 1
    assert c.usage()["m"]["failures"] == {kind: 1}


def test_tokens_and_cost_are_counted_per_model():
    script = [
        Reply("one", prompt_tokens=1000, completion_tokens=500),
        Reply("two", prompt_tokens=3000, completion_tokens=100),
    ]
    with LLMServer(script) as server:
        budget = DollarBudget(10.0)
        c = client(
            server,
            budget,
            models=[
                {"name": "a", "price_input": 2.0, "price_output": 4.0},
                {"name": "b", "price_input": 1.0, "price_output": 10.0},
            ],
        )
        one = c.complete(MESSAGES, c.config.model("a"))
        two = c.complete(MESSAGES, c.config.model("b"))
    assert one.cost == pytest.approx((1000 * 2 + 500 * 4) / 1e6)
    assert two.cost == pytest.approx((3000 * 1 + 100 * 10) / 1e6)
    assert [r.json["model"] for r in server.requests] == ["a", "b"]
    usage = c.usage()
    assert usage["a"] == {
        "requests": 1,
        "input_tokens": 1000,
        "output_tokens": 500,
        "cost": pytest.approx(one.cost),
        "failures": {},
        "failure_cost": {},
    }
    assert usage["b"]["output_tokens"] == 100
    assert budget.spent == pytest.approx(one.cost + two.cost) and budget.reserved == 0


def test_dollar_budget_is_never_exceeded_under_concurrency():
    # Worst case per request: (~160 prompt bytes + 24 overhead + 100 reply tokens) at $1000/M
    # = ~$0.28; real cost 0.13. With $1.00 only a handful fit.
    def slow_reply(request):
        time.sleep(0.05)
        return Reply("fine", prompt_tokens=30, completion_tokens=100)

    limit = 1.0
    budget = DollarBudget(limit)
    results: list[object] = []
    with LLMServer(slow_reply) as server:
        c = client(
            server,
            budget,
            concurrency=4,
            max_tokens=100,
            models=[{"name": "m", "price_input": 1000.0, "price_output": 1000.0}],
        )

        def worker():
            for _ in range(4):
                try:
                    results.append(c.complete(MESSAGES, c.config.models[0]))
                except LLMFailure as e:  # anything else would fail the test
                    results.append(e)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    ok = [r for r in results if not isinstance(r, LLMFailure)]
    refused = [r for r in results if isinstance(r, LLMFailure)]
    assert len(results) == 32 and ok and refused
    assert {r.kind for r in refused} == {"budget"}
    assert budget.spent <= limit and budget.reserved == 0
    assert budget.spent == pytest.approx(0.13 * len(ok))
    assert len(server.requests) == len(ok)  # a refused request is never sent
    assert c.usage()["m"]["failures"] == {"budget": len(refused)}
    assert c.usage()["m"]["requests"] == len(ok)


def test_a_timed_out_request_is_charged_its_worst_case():
    budget = DollarBudget(100.0)
    with LLMServer([Slow(3.0)]) as server:
        c = client(
            server,
            budget,
            retries=0,
            max_tokens=1000,
            models=[{"name": "m", "price_input": 0.0, "price_output": 1000.0}],
        )
        with pytest.raises(LLMFailure) as err:
            c.complete(MESSAGES, c.config.models[0])
    assert err.value.kind == "timeout"
    assert budget.spent == pytest.approx(1.0)  # 1000 reply tokens at $1000/M: may be billed


def test_concurrency_caps_requests_in_flight():
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def counting(request):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return "ok"

    with LLMServer(counting) as server:
        c = client(server, concurrency=2, timeout=5.0)
        threads = [
            threading.Thread(target=c.complete, args=(MESSAGES, c.config.models[0]))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert state["max"] == 2 and len(server.requests) == 6


def test_api_key_goes_only_into_the_authorization_header(monkeypatch, caplog):
    key = "sk-test-5ecret-0123456789"
    monkeypatch.setenv("EVO_TEST_LLM_KEY", key)
    caplog.set_level(logging.DEBUG)
    with LLMServer(["ok", Status(401, body='{"error": {"message": "bad key"}}')]) as server:
        c = client(server, retries=0)
        c.complete(MESSAGES, c.config.models[0])
        with pytest.raises(LLMFailure) as err:
            c.complete(MESSAGES, c.config.models[0])
    for r in server.requests:
        assert r.headers["authorization"] == f"Bearer {key}"
        others = {k: v for k, v in r.headers.items() if k != "authorization"}
        assert key not in str(others) and key.encode() not in r.raw
    assert key not in repr(c) and key not in repr(c.config) and key not in str(err.value)
    assert key not in str(c.usage())
    assert caplog.records and key not in caplog.text  # openai's own debug logs


def test_a_missing_key_variable_sends_a_placeholder(monkeypatch):
    monkeypatch.delenv("EVO_TEST_LLM_KEY", raising=False)
    with LLMServer(["ok"]) as server:
        c = client(server)
        c.complete(MESSAGES, c.config.models[0])
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"


def test_model_choice_follows_weights_and_the_callers_rng():
    with LLMServer([]) as server:
        c = client(server, models=[{"name": "a", "weight": 3}, {"name": "b", "weight": 1}])
        picks = [c.pick_model(np.random.default_rng(7)).name for _ in range(3)]
        rng = np.random.default_rng(0)
        names = [c.pick_model(rng).name for _ in range(4000)]
    assert len(set(picks)) == 1  # same rng state, same model
    assert names.count("a") / len(names) == pytest.approx(0.75, abs=0.03)


def test_budget_rejects_bad_limits_and_refuses_at_zero():
    with pytest.raises(ValueError, match="budget limit"):
        DollarBudget(-1.0)
    b = DollarBudget(0.0)
    with pytest.raises(LLMFailure) as err:
        b.reserve(0.01)
    assert err.value.kind == "budget" and b.remaining == 0.0
