"""LLMMutation and LLMCrossover end to end: real HTTP on loopback, the real openai client, real
seeds. What the prompt carries, what the child carries, and every fault as a failed proposal."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from archive.program import Program, SeedRun
from operators.base import Context
from operators.errors import NoChild
from operators.llm import (
    DollarBudget,
    LLMChild,
    LLMConfig,
    LLMCrossover,
    LLMMutation,
    LLMNoChild,
    build_llm_operators,
    make_client,
)
from operators.validate import canonical_hash
from tests.llm_server import DROP, NOT_JSON, LLMServer, Reply, Slow, Status

ROOT = Path(__file__).resolve().parents[2]
TINYGPT = (ROOT / "targets/tinygpt/train.py").read_text()
PACK = (ROOT / "tests/llm_fixtures/pack.py").read_text()
# (seed source, block target?, constant to change, its text in the seed, the new text)
SEEDS = {
    "tinygpt": (TINYGPT, False, "LEARNING_RATE = 1e-3", "LEARNING_RATE = 2e-3"),
    "pack": (PACK, True, "SPACING = 0.9", "SPACING = 0.95"),
}
if (ROOT / "targets/circle_packing/pack.py").exists():  # the real target, once it has landed
    _real = (ROOT / "targets/circle_packing/pack.py").read_text()
    SEEDS["circle_packing"] = (_real, "EVOLVE-BLOCK-START" in _real, "", "")


def program(source: str, fitness: float = 1.5, **kw) -> Program:
    kw.setdefault("runs", [SeedRun(0, "ok", {"val_bpb": fitness, "steps": 100.0})])
    return Program(
        id=canonical_hash(source),
        source=source,
        fidelity="tiny",
        status="ok",
        fitness=fitness,
        fitness_std=0.01,
        **kw,
    )


def make_op(cls, server: LLMServer, budget: DollarBudget | None = None, **kw):
    table = {
        "base_url": server.base_url,
        "timeout": 0.3,
        "retries": 0,
        "backoff": 0.01,
        "models": [{"name": "coder", "price_input": 1.0, "price_output": 2.0}],
        **kw,
    }
    cfg = LLMConfig.from_dict(table)
    return cls(make_client(cfg, budget), cfg)


def context(seed: str = TINYGPT, **kw) -> Context:
    return Context(
        seed_source=seed, description="Train a byte-level GPT; lower val_bpb wins.", **kw
    )


COSINE = (
    "```python\nimport math\n\n\ndef lr_multiplier(progress):\n"
    "    return 0.5 * (1.0 + math.cos(math.pi * progress))\n```\n"
)


def test_mutation_prompt_carries_task_feedback_inspirations_and_niche():
    other = program(
        TINYGPT.replace("DEPTH = 2 ", "DEPTH = 4 "),
        fitness=1.41,
        descriptors={"region": "constants", "edit_size_bin": 1},
    )
    parent = program(TINYGPT, descriptors={"region": "none", "edit_size_bin": 0})
    ctx = context(
        feedback=(
            "child 3f2a crashed: RuntimeError: CUDA out of memory",
            "parent stderr tail: step 90 loss 2.31",
        ),
        archive_sample=(parent, other),
        niche={"region": "schedule", "edit_size_bin": 2},
    )
    with LLMServer([Reply(COSINE, prompt_tokens=4000, completion_tokens=50)]) as server:
        op = make_op(LLMMutation, server)
        child = op.propose([parent], ctx, np.random.default_rng(0))
    prompt = server.requests[0].prompt
    assert "lower val_bpb wins" in prompt
    assert "status ok; fitness 1.5 ± 0.01; metrics steps=100, val_bpb=1.5" in prompt
    assert "CUDA out of memory" in prompt and "step 90 loss 2.31" in prompt
    assert "Inspiration 1 (status ok; fitness 1.41" in prompt
    assert "-DEPTH = 2 " in prompt and "+DEPTH = 4 " in prompt and "Inspiration 2" not in prompt
    assert "change the code in region 'schedule' (the code of lr_multiplier, WARMUP_FRAC" in prompt
    assert "about 2-3 AST nodes" in prompt and "# replaces: ClassName.method" in prompt
    assert TINYGPT.strip() in prompt  # the parent in full

    assert isinstance(child, LLMChild) and child.operator == "llm_mutation"
    assert child.parents == (parent.id,) and child.id == canonical_hash(child.source)
    assert child.description == "changed lr_multiplier; added import math"
    assert child.tokens == 4050 and child.model == "coder"
    assert child.cost == pytest.approx((4000 * 1.0 + 50 * 2.0) / 1e6)
    assert "math.cos(math.pi * progress)" in child.source and child.idea == ""


def test_ideas_first_asks_for_an_idea_and_stores_it():
    reply = "IDEA: cosine decay keeps the LR high for longer\n\n" + COSINE
    with LLMServer([reply]) as server:
        op = make_op(LLMMutation, server, ideas_first=True)
        child = op.propose([program(TINYGPT)], context(), np.random.default_rng(0))
    assert "IDEA: <the change and why it should help>" in server.requests[0].prompt
    assert child.idea == "cosine decay keeps the LR high for longer"
    assert child.description == child.idea


def test_crossover_prompt_has_both_diffs_and_the_child_keeps_both():
    a = program(TINYGPT.replace("LEARNING_RATE = 1e-3", "LEARNING_RATE = 3e-3"))
    b = program(TINYGPT.replace("GRAD_CLIP = 1.0", "GRAD_CLIP = 0.25"), fitness=1.45)
    merged = "```python\nGRAD_CLIP = 0.25\n```"
    with LLMServer([merged]) as server:
        op = make_op(LLMCrossover, server)
        child = op.propose([a, b], context(), np.random.default_rng(1))
    prompt = server.requests[0].prompt
    assert "-LEARNING_RATE = 1e-3" in prompt and "+LEARNING_RATE = 3e-3" in prompt
    assert "-GRAD_CLIP = 1.0" in prompt and "+GRAD_CLIP = 0.25" in prompt
    assert (
        prompt.index("Parent A (")
        < prompt.index("+LEARNING_RATE = 3e-3")
        < prompt.index("Parent B (")
        < prompt.index("+GRAD_CLIP = 0.25")
    )
    assert child.parents == (a.id, b.id) and child.operator == "llm_crossover"
    assert "LEARNING_RATE = 3e-3" in child.source and "GRAD_CLIP = 0.25" in child.source


def test_crossover_diffs_against_the_given_ancestor():
    ancestor = TINYGPT.replace("DEPTH = 2 ", "DEPTH = 3 ")
    a = program(ancestor.replace("N_HEAD = 2 ", "N_HEAD = 4 "))
    b = program(ancestor.replace("MLP_RATIO = 4 ", "MLP_RATIO = 3 "))
    with LLMServer(["```python\nMLP_RATIO = 3\n```"]) as server:
        op = make_op(LLMCrossover, server)
        op.propose([a, b], context(ancestor_source=ancestor), np.random.default_rng(1))
    prompt = server.requests[0].prompt
    assert "+N_HEAD = 4 " in prompt and "+MLP_RATIO = 3 " in prompt and "DEPTH = 2" not in prompt


@pytest.mark.parametrize("fmt", ["definitions", "search_replace", "whole_file"])
@pytest.mark.parametrize("name", sorted(SEEDS))
def test_each_format_applies_on_each_seed(fmt, name):
    seed, block, old, new = SEEDS[name]
    if not old:  # a target we did not write: change its last evolvable constant
        old = next(
            ln
            for ln in reversed(seed.splitlines())
            if ln[:1].isupper() and " = " in ln and ln.split(" = ")[1][:1].isdigit()
        )
        new = old.replace(" = ", " = 1 + ", 1)
    reply = {
        "definitions": f"```python\n{new}\n```",
        "search_replace": f"<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE",
        "whole_file": f"```python\n{seed.replace(old, new)}```",
    }[fmt]
    with LLMServer([reply]) as server:
        op = make_op(LLMMutation, server, format=fmt)
        child = op.propose([program(seed)], context(seed, block=block), np.random.default_rng(0))
    assert child.source.replace(new, old, 1) == seed  # that one line changed, nothing else
    assert op.failures_by_kind == {}


def test_a_search_that_matches_nothing_rejects_the_child_with_the_reason():
    reply = "<<<<<<< SEARCH\nLEARNING_RATE = 5e-4\n=======\nLEARNING_RATE = 1e-3\n>>>>>>> REPLACE"
    with LLMServer([reply]) as server:
        op = make_op(LLMMutation, server, format="search_replace")
        with pytest.raises(LLMNoChild) as err:
            op.propose([program(TINYGPT)], context(), np.random.default_rng(0))
    assert err.value.kind == "edit" and "block 1" in err.value.reason
    assert "matches nothing" in err.value.reason and err.value.cost > 0
    assert op.failures_by_kind == {"edit": 1} and op.recent_failures[-1] == err.value.reason


FAULTS = [
    (Status(429, retry_after=0.01), "rate_limited"),
    (Status(500), "server_error"),
    (Slow(2.0, COSINE), "timeout"),
    (DROP, "connection"),
    (NOT_JSON, "malformed"),
    ("", "empty"),
    ("<<<<<<< SEARCH\nnot in the program\n=======\nx = 1\n>>>>>>> REPLACE", "edit"),
    ("x" * 1_000_000, "too_large"),
    ("```python\ndef lr_multiplier(progress):\n    return (\n```", "edit"),
    ("```python\nLEARNING_RATE = 0.001\n```", "invalid_noop"),
]


def test_every_fault_is_a_failed_proposal_never_a_crash():
    with LLMServer([item for item, _ in FAULTS]) as server:
        op = make_op(LLMMutation, server)
        kinds = []
        for _ in FAULTS:
            with pytest.raises(NoChild) as err:
                op.propose([program(TINYGPT)], context(), np.random.default_rng(0))
            assert isinstance(err.value, LLMNoChild) and "\n" not in err.value.reason
            kinds.append(err.value.kind)
    assert kinds == [kind for _, kind in FAULTS]
    assert sum(op.failures_by_kind.values()) == len(FAULTS)
    assert op.failures_by_kind["edit"] == 2
    assert op.client.usage()["coder"]["failures"]["timeout"] == 1


def test_faults_are_retried_before_the_proposal_fails():
    script = [Status(429, retry_after=0.05), Status(500), DROP, Slow(2.0), COSINE]
    with LLMServer(script) as server:
        op = make_op(LLMMutation, server, retries=4)
        child = op.propose([program(TINYGPT)], context(), np.random.default_rng(0))
    assert "math.cos" in child.source and len(server.requests) == 5


def test_budget_refusal_is_a_failed_proposal_and_sends_nothing():
    with LLMServer([COSINE]) as server:
        op = make_op(LLMMutation, server, budget=DollarBudget(0.001))
        with pytest.raises(LLMNoChild) as err:
            op.propose([program(TINYGPT)], context(), np.random.default_rng(0))
    assert err.value.kind == "budget" and server.requests == []


def test_concurrent_proposals_from_worker_threads():
    def reply(request):
        lr = 1e-3 * (2 + len(request["messages"][1]["content"]) % 7)
        return f"```python\nLEARNING_RATE = {lr!r}\nWEIGHT_DECAY = 0.05\n```"

    children, errors = [], []
    parents = [program(TINYGPT.replace("DEPTH = 2 ", f"DEPTH = {d} ")) for d in range(2, 10)]
    with LLMServer(reply) as server:
        op = make_op(LLMMutation, server, concurrency=3, timeout=5.0)
        assert op.slow is True

        def work(p):
            try:
                children.append(op.propose([p], context(), np.random.default_rng(0)))
            except NoChild as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(p,)) for p in parents]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and len(children) == 8
    assert len({c.id for c in children}) == 8
    assert all("WEIGHT_DECAY = 0.05" in c.source for c in children)


def test_build_llm_operators_shares_one_client_and_honours_weights():
    with LLMServer([]) as server:
        cfg = LLMConfig.from_dict({"base_url": server.base_url, "models": ["m"]})
        ops = build_llm_operators(
            cfg, {"llm_mutation": 2.0, "llm_crossover": 0.5, "constants": 1.0}
        )
        assert [(type(op), w) for op, w in ops] == [(LLMMutation, 2.0), (LLMCrossover, 0.5)]
        assert ops[0][0].client is ops[1][0].client
        assert [op.name for op, _ in build_llm_operators(cfg, {"llm_crossover": 1.0})] == [
            "llm_crossover"
        ]
    assert build_llm_operators(LLMConfig.from_dict({}), {"llm_mutation": 1.0}) == []
