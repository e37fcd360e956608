"""Endpoint faults end a run the way a user can act on: one per fault kind, through `evo run`
against our OpenAI-compatible server on loopback (and a closed port), each with the run's
journal intact and `evo status` readable afterwards.

- a silent endpoint, every reply unusable, 500s: the circuit breaker stops the run after
  ``llm.max_failures`` proposals in a row, one line naming the endpoint, class and last error
  (exit 2: nothing was evaluated);
- a refused connection: stopped after one proposal's retries;
- a trickling endpoint: each request ends at ``llm.timeout`` although bytes keep coming;
- a 429 with ``Retry-After: 3600``: the whole run backs off (one probe per pause, not every
  worker hammering), while the structural operators keep the slots busy; an endpoint that
  answers nothing stops the run after ``llm.max_outage`` seconds;
- a priced model without ``run.dollars``: a default cap, printed at start, that failed
  proposals count towards;
- SIGTERM in the middle of a request: the run ends within seconds, the summary says why.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import evo
from archive import RunStore
from evo.cli import main
from evo.config import to_toml
from evo.proposals import STRUCTURAL
from operators.llm import LLMConfig, LLMFailure, make_client
from tests.evo.loop_helpers import env, evo_cmd, search_config
from tests.llm_server import LLMServer, Slow, Status, Trickle

UNUSABLE = "I would raise the learning rate and train for longer; that should help."


def llm_config(
    tmp_path: Path, base_url: str, *, structural: bool = False, evaluations: int = 12, **llm: object
) -> Path:
    """A run config file: circle_packing, LLM mutation only (plus ``constants`` when
    ``structural``), fast timeouts."""
    cfg = search_config("circle_packing", tmp_path / "run", evaluations)
    for name in STRUCTURAL:
        cfg["operators"][name] = 0.0
    if structural:
        cfg["operators"]["constants"] = 1.0
        cfg["bandit"]["initial_design"] = 0
    cfg["operators"]["llm_mutation"] = 1.0
    cfg["operators"]["llm_crossover"] = 0.0
    cfg["llm"] = {
        "base_url": base_url,
        "models": ["test-model"],
        "timeout": 1.0,
        "retries": 0,
        "backoff": 0.05,
        "max_backoff": 0.5,
        "concurrency": 2,
        "max_failures": 4,
        **llm,
    }
    evo.config.validate(cfg)
    path = tmp_path / "run.toml"
    path.write_text(to_toml(cfg))
    return path


def run_cli(path: Path, capsys) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    rc = main(["run", str(path), "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err, time.monotonic() - t0


def assert_readable(tmp_path: Path, capsys) -> dict:
    """The journal reads back and `evo status --json` works; returns the status."""
    RunStore.read(tmp_path / "run")
    assert main(["status", str(tmp_path / "run"), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_silent_endpoint_trips_the_breaker_and_exits_2(tmp_path, capsys):
    with LLMServer(lambda req: Slow(3600)) as server:
        rc, out, err, took = run_cli(llm_config(tmp_path, server.base_url), capsys)
        asked = len(server.requests)
    assert rc == 2, err
    line = err.strip().splitlines()[0]
    assert server.base_url in line and "4 proposals in a row" in line and "timeout" in line
    assert "no child was evaluated" in line
    assert asked <= 4 + 2  # the breaker's count plus the requests in flight
    assert took < 30
    status = assert_readable(tmp_path, capsys)
    assert status["llm"]["outcomes"]["request failed"] >= 4
    assert "timeout" in status["llm"]["last_reason"]["request failed"]


def test_an_endpoint_that_answers_nothing_stops_the_run_after_max_outage(tmp_path, capsys):
    # Retries and a growing run-wide backoff would make 20 failed proposals take hours; the
    # outage clock stops the run after max_outage seconds however long each request waits.
    with LLMServer(lambda req: Status(429, retry_after=3600)) as server:
        path = llm_config(
            tmp_path,
            server.base_url,
            retries=4,
            backoff=0.5,
            max_backoff=60.0,
            max_failures=0,
            max_outage=1.5,
        )
        rc, _, err, took = run_cli(path, capsys)
    assert rc == 2 and took < 20, (took, err)
    line = err.strip().splitlines()[0]
    assert "answered no request for" in line and "llm.max_outage = 1.5 s" in line
    assert "rate_limited" in line and "HTTP 429" in line
    assert_readable(tmp_path, capsys)


def test_a_trickling_endpoint_ends_each_request_at_its_deadline():
    # Bytes arrive every 0.2 s, far inside any read timeout; only a total deadline ends it.
    with LLMServer([Trickle(0.2)]) as server:
        cfg = LLMConfig.from_dict(
            {"base_url": server.base_url, "models": ["m"], "timeout": 1.0, "retries": 0}
        )
        client = make_client(cfg)
        t0 = time.monotonic()
        with pytest.raises(LLMFailure) as err:
            client.complete([{"role": "user", "content": "hi"}], cfg.models[0])
        took = time.monotonic() - t0
    assert err.value.kind == "timeout" and "whole response" in err.value.reason
    assert 0.9 < took < 2.5


def test_a_trickling_endpoint_stops_the_run(tmp_path, capsys):
    with LLMServer(lambda req: Trickle(0.2)) as server:
        rc, _, err, took = run_cli(llm_config(tmp_path, server.base_url, max_failures=2), capsys)
    assert rc == 2 and "timeout" in err and took < 30
    assert_readable(tmp_path, capsys)


def test_a_refused_connection_stops_the_run_after_one_proposal(tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    rc, _, err, took = run_cli(llm_config(tmp_path, url, max_failures=50, retries=1), capsys)
    assert rc == 2
    line = err.strip().splitlines()[0]
    assert "unreachable" in line and url in line and "llm.base_url" in line
    assert took < 30
    assert_readable(tmp_path, capsys)


def test_every_reply_unusable_stops_after_max_failures_and_keeps_the_replies(tmp_path, capsys):
    with LLMServer(lambda req: UNUSABLE) as server:
        rc, _, err, _ = run_cli(llm_config(tmp_path, server.base_url), capsys)
        asked = len(server.requests)
    assert rc == 2 and "unparsable" in err and "no ```python code block" in err
    assert asked <= 4 + 2
    logged = [json.loads(ln) for ln in (tmp_path / "run/proposals.jsonl").read_text().splitlines()]
    assert len(logged) >= 4 and all(r["outcome"] == "unparsable" for r in logged)
    assert logged[0]["reply"] == UNUSABLE and logged[0]["model"] == "test-model"
    # The reason went back to the model: the next prompt quotes it.
    assert "could not be used" in server.requests[-1].prompt
    assert main(["status", str(tmp_path / "run")]) == 0
    shown = capsys.readouterr().out
    assert "LLM proposals" in shown and "unparsable" in shown
    # A run that evaluated nothing but the seed still reports what the model said.
    assert main(["report", str(tmp_path / "run")]) == 0
    report = (tmp_path / "run/report.md").read_text()
    assert "## LLM proposals" in report and "| unparsable |" in report
    assert "{rep." not in report and " s of evaluation time" in report  # every field filled


def test_500s_back_off_as_a_run_and_then_trip_the_breaker(tmp_path, capsys):
    with LLMServer(lambda req: Status(500)) as server:
        rc, _, err, took = run_cli(
            llm_config(tmp_path, server.base_url, concurrency=4, max_backoff=0.3), capsys
        )
        times = [r.at for r in server.requests]
    assert rc == 2 and "server_error" in err and "HTTP 500" in err
    # After the first failure, requests are spaced by the shared pause (one probe at a time).
    gaps = [b - a for a, b in zip(times[4:], times[5:], strict=False)]
    assert all(g > 0.03 for g in gaps), gaps
    assert took < 30
    assert_readable(tmp_path, capsys)


def test_a_429_with_a_long_retry_after_pauses_the_llm_while_constants_keep_the_slots_busy(
    tmp_path, capsys
):
    with LLMServer(lambda req: Status(429, retry_after=3600)) as server:
        path = llm_config(
            tmp_path,
            server.base_url,
            structural=True,
            evaluations=400,
            concurrency=4,
            max_backoff=0.5,
            max_failures=5,
        )
        rc, out, err, took = run_cli(path, capsys)
        times = [r.at for r in server.requests]
    assert rc == 0, err  # children were evaluated: the summary says why it stopped
    assert "stopped" in out and "rate_limited" in out and "5 proposals in a row" in out
    # Four workers asked once each at the start; after that one probe per 0.5 s pause.
    later = times[4:]
    assert all(b - a > 0.4 for a, b in zip(later, later[1:], strict=False)), later
    assert len(times) <= 4 + 5
    store = RunStore.read(tmp_path / "run")
    assert sum(p.operator == "constants" and bool(p.runs) for p in store.programs.values()) > 0
    assert took < 60


def test_a_priced_model_without_a_budget_gets_a_default_cap_that_failures_count_towards(
    tmp_path, capsys
):
    # $2 per request's worth of tokens: the default $10 cap allows a handful of requests.
    price = {"name": "pricey", "price_input": 1000.0, "price_output": 1000.0}
    with LLMServer(lambda req: UNUSABLE) as server:
        path = llm_config(tmp_path, server.base_url, models=[price], max_failures=0, max_tokens=500)
        rc, out, err, _ = run_cli(path, capsys)
        asked = len(server.requests)
    assert "LLM spend is capped at $10.00" in err
    assert rc == 2 and "LLM dollar budget: the dollar budget of $10.0000 would be passed" in err
    assert "lower llm.max_tokens" in err
    assert 1 <= asked <= 10
    status = assert_readable(tmp_path, capsys)
    assert status["cost"] <= 10.0 + 1e-9 and status["cost"] > 1.0  # failed proposals are billed
    usage = status["llm"]["usage"]["pricey"]
    assert set(usage["failures"]) <= {"budget"}  # refusals are counted, never sent
    assert usage["cost"] == pytest.approx(status["cost"])


def test_sigterm_during_a_request_ends_the_run_within_seconds(tmp_path, capsys):
    with LLMServer(lambda req: Slow(3600)) as server:
        path = llm_config(tmp_path, server.base_url, timeout=600.0, max_failures=0)
        proc = subprocess.Popen(
            evo_cmd("run", str(path), "--no-progress"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.requests, "the run never asked the model"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    assert took < 5, took
    assert proc.returncode == 143 and "stopped by SIGTERM" in out, (out, err)
    RunStore.read(tmp_path / "run")
    assert main(["status", str(tmp_path / "run"), "--json"]) == 0  # readable afterwards
    assert json.loads(capsys.readouterr().out)["programs"] >= 1  # the seed, journaled
