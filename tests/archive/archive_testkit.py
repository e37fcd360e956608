"""Shared by the archive tests and their subprocess scripts: programs and state snapshots."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

from archive import Dim, Program, RunStore, SeedRun

ROOT = Path(__file__).resolve().parents[2]
DIMS = (
    Dim(name="depth", low=0, high=8, bins=8),
    Dim(name="opt", kind="category", categories=("adam", "sgd", "muon")),
)

TEMPLATE = '''"""Train a small GPT on the tiny corpus; variant {i}."""
import math

import torch

DEPTH = {depth}  # transformer blocks
WIDTH = {width}  # model width
LR = {lr!r}  # peak learning rate
WARMUP = {warmup}  # warm-up steps
OPTIMIZER = "{opt}"  # adam | sgd | muon


def schedule(step: int, total: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, total - WARMUP)
    return LR * 0.5 * (1.0 + math.cos(math.pi * progress))


def build(vocab: int) -> torch.nn.Module:
    layers = [torch.nn.Embedding(vocab, WIDTH)]
    for _ in range(DEPTH):
        layers += [torch.nn.LayerNorm(WIDTH), torch.nn.Linear(WIDTH, 4 * WIDTH), torch.nn.GELU(),
                   torch.nn.Linear(4 * WIDTH, WIDTH)]
    layers += [torch.nn.LayerNorm(WIDTH), torch.nn.Linear(WIDTH, vocab)]
    return torch.nn.Sequential(*layers)
'''


def make_program(
    i: int,
    *,
    rng: random.Random | None = None,
    fidelity: str = "tiny",
    status: str | None = None,
    fitness: float | None = None,
    parents: tuple[str, ...] = (),
    small: bool = False,
) -> Program:
    """A realistic program record (a ~1.2 KB training script) with seeded random fields."""
    rng = rng or random.Random(i)
    depth, opt = rng.randrange(0, 9), rng.choice(["adam", "sgd", "muon"])
    source = (
        f"DEPTH = {depth}\nLR = {rng.random()!r}\n"
        if small
        else TEMPLATE.format(
            i=i,
            depth=depth,
            width=rng.choice([64, 128, 256]),
            lr=10 ** rng.uniform(-4, -2),
            warmup=rng.randrange(0, 500),
            opt=opt,
        )
    )
    status = status or rng.choice(["ok"] * 6 + ["crash", "timeout", "nan", "oom"])
    ok = status == "ok"
    if fitness is None and ok:
        fitness = 3.0 + rng.random()
    runs = [
        SeedRun(
            seed=s,
            status=status,
            metrics={"val_bpb": fitness or 0.0, "steps": 100.0},
            wall_time=rng.random() * 10,
        )
        for s in range(rng.randrange(1, 3))
    ]
    return Program(
        id=hashlib.sha256(source.encode()).hexdigest()[:16] + f"-{i}",
        source=source,
        fidelity=fidelity,
        parents=parents,
        operator=rng.choice(["seed", "mutate", "llm"]),
        description=f"set DEPTH={depth}",
        idea="deeper is better" if ok else "",
        birth=i,
        status=status,
        runs=runs,
        fitness=fitness,
        fitness_std=rng.random() * 0.01 if ok else None,
        descriptors={"depth": depth, "opt": opt, "params": rng.random() * 1e6},
        wall_time=rng.random() * 30,
        cost=rng.random() * 0.01,
        tokens=rng.randrange(0, 5000),
        reason="" if ok else f"{status} at step {rng.randrange(100)}",
        stderr_tail="" if ok else "Traceback (most recent call last):\n  ...\nRuntimeError: ✗ boom",
        lineage=f"root-{i % 7}" if i % 3 == 0 else "",
    )


def snapshot(store: RunStore) -> dict[str, Any]:
    """Everything a store holds, in a form that compares with ==."""
    return {
        "programs": [(k, p.to_dict()) for k, p in store.programs.items()],
        "history": list(store.history),
        "fidelities": store.fidelities,
        "elites": {f: list(store.elites(f).cells()) for f in store.fidelities},
        "stats": {f: store.elites(f).stats() for f in store.fidelities},
        "offsets": {f: store.elites(f).qd_offset for f in store.fidelities},
        "offspring": dict(store.offspring_counts()),
        "pending": [p.key for p in store.pending()],
        "counts": store.counts_by_status(),
        "meta": store.meta,
        "seq": store.journal_seq,
    }


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: to prove that nothing was changed."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(Path(__file__).parent)])
    return env
