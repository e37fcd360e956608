"""Time per child of each structural operator on a 600-line training script.

A child's time is what the loop pays before evaluation: the operator's proposal, validation
(``validate_child``), the canonical hash and the edit descriptors. *warm*: the parents were
parsed before (the loop keeps a parse cache, and parents are picked again and again); *cold*:
the parse cache is emptied before each child, except the seed's (the loop always has it).
The ``llm-style`` row is a child that arrives as text (as an LLM's would): it pays a libcst
parse in validation.

Run: ``PYTHONPATH=. python benchmarks/operators_bench.py [--children N]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import libcst as cst
import numpy as np

from archive.program import Program
from benchmarks._report import table, update_section
from operators import (
    OPERATORS,
    Context,
    NoChild,
    canonical_hash,
    clear_cache,
    edit_descriptors,
    validate_child,
)
from operators.parsed import parsed
from operators.statements import units

FIXTURE = Path(__file__).resolve().parent.parent / "tests/operators/fixtures/train600.py"


def _program(source: str) -> Program:
    return Program(id=canonical_hash(source), source=source, fidelity="bench")


def _pool(ctx: Context, rng: np.random.Generator, size: int) -> list[Program]:
    """The seed and a few descendants, as an archive would hold."""
    pool = [_program(ctx.seed_source)]
    mutations = [OPERATORS[n]() for n in ("constants", "choice", "toggle")]
    while len(pool) < size:
        parent = pool[int(rng.integers(len(pool)))]
        try:
            child = mutations[int(rng.integers(3))].propose([parent], ctx, rng)
        except NoChild:
            continue
        pool.append(_program(child.source))
    return pool


def _warm_seed(ctx: Context) -> None:
    units(parsed(ctx.seed_source))


def _child_ms(op, parents, ctx, rng, seed_source, seen: set[str]) -> float | None:
    t0 = time.perf_counter()
    try:
        child = op.propose(parents, ctx, rng)
    except NoChild:
        return None
    if child.source in seen:  # a repeat is all cache hits: the loop dedups it; don't time it
        return -1.0
    seen.add(child.source)
    validate_child(child.source, parents[0].source, block=ctx.block)
    canonical_hash(child.source)
    edit_descriptors(child.source, seed_source)
    return (time.perf_counter() - t0) * 1000


def _stats(xs: list[float]) -> tuple[str, str]:
    if not xs:
        return "-", "-"
    return f"{statistics.median(xs):.1f}", f"{np.percentile(xs, 90):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=40, help="children per operator and mode")
    args = ap.parse_args()
    seed = FIXTURE.read_text()
    ctx = Context(seed_source=seed, droppable=("get_weight_decay",))
    rng = np.random.default_rng(0)
    pool = _pool(ctx, rng, 30)
    rows = []
    for name in OPERATORS:
        op = OPERATORS[name]()
        for mode in ("warm", "cold"):
            times, misses, seen = [], 0, set()
            for _ in range(args.children):
                parents = [pool[int(rng.integers(len(pool)))] for _ in range(op.arity)]
                if mode == "cold":
                    clear_cache()
                    _warm_seed(ctx)
                else:
                    for p in parents:
                        units(parsed(p.source))
                ms = _child_ms(op, parents, ctx, rng, seed, seen)
                if ms is None:
                    misses += 1
                elif ms >= 0:
                    times.append(ms)
            rows.append([name, mode, len(times), misses, *_stats(times)])

    # a child that arrives as text: validation parses it with libcst
    llm = []
    for i in range(args.children):
        parent = pool[i % len(pool)]
        units(parsed(parent.source))
        text = parent.source.replace("    if max_norm <= 0:\n", f"    if max_norm <= -{i + 1}:\n")
        t0 = time.perf_counter()
        validate_child(text, parent.source, block=False)
        canonical_hash(text)
        edit_descriptors(text, seed)
        llm.append((time.perf_counter() - t0) * 1000)
    rows.append(["llm-style (text child)", "warm parent", len(llm), 0, *_stats(llm)])

    parse_ms = []
    for _ in range(10):
        t0 = time.perf_counter()
        cst.parse_module(seed)
        parse_ms.append((time.perf_counter() - t0) * 1000)
    body = table(
        ["operator", "parse cache", "new children", "NoChild", "median ms", "p90 ms"], rows
    )
    body += (
        f"\n\nInput: `{FIXTURE.relative_to(FIXTURE.parents[3])}` "
        f"({len(seed.splitlines())} lines); libcst parse alone: "
        f"{statistics.median(parse_ms):.1f} ms median. Goal: <= 100 ms median per child "
        "(operator + validation + canonical hash + descriptors). NoChild: proposals that "
        "gave no new child (e.g. crossover of parents whose constants agree); the loop "
        "then asks again. Children equal to an earlier one are not timed (all cache hits; "
        "the loop dedups them). Parents: the seed and 29 descendants."
    )
    print(body)
    update_section(
        "operators",
        "Structural operators: time per child",
        body,
        "PYTHONPATH=. python benchmarks/operators_bench.py",
    )


if __name__ == "__main__":
    main()
