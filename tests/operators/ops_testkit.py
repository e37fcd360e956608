"""Shared by the operators tests: the seeds under test and independent checks of children.

The checks here use the stdlib ``ast`` directly (not the package's own statement units), so
that a bug in the package cannot hide itself.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archive.program import Program
from operators import Context, canonical_hash

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
START, END = "EVOLVE-BLOCK-START", "EVOLVE-BLOCK-END"

REAL_SEEDS = {"tinygpt": "train.py", "circle_packing": "pack.py"}
"""Evolving files of the real targets, used when a target folder has no target.toml yet."""


@dataclass(frozen=True)
class Case:
    name: str
    context: Context

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep them short
        return f"Case({self.name!r})"

    @property
    def seed(self) -> Program:
        return program(self.context.seed_source)


def program(source: str) -> Program:
    return Program(id=canonical_hash(source), source=source, fidelity="test")


def cases() -> list[Case]:
    """The fixtures, and every real target whose seed exists in ``targets/``."""
    out = [
        Case(
            "train600",
            Context(
                seed_source=(FIXTURES / "train600.py").read_text(),
                ranges={"DEPTH": (2.0, 16.0), "MATRIX_LR": (0.001, 0.1)},
                droppable=("get_weight_decay",),
            ),
        ),
        Case(
            "block_pack", Context(seed_source=(FIXTURES / "block_pack.py").read_text(), block=True)
        ),
    ]
    for folder in sorted((ROOT / "targets").iterdir()):
        openevolve = (folder / "initial_program.py").is_file() and (
            folder / "evaluator.py"
        ).is_file()
        if (folder / "target.toml").is_file() or openevolve:
            from evo.target import load_target

            t = load_target(folder)
            out.append(
                Case(
                    t.name,
                    Context(
                        seed_source=t.seed_source(),
                        ranges=t.ranges,
                        choices=t.choices,
                        droppable=t.droppable,
                        block=t.block,
                    ),
                )
            )
        elif folder.name in REAL_SEEDS and (folder / REAL_SEEDS[folder.name]).is_file():
            source = (folder / REAL_SEEDS[folder.name]).read_text()
            block = START in source and END in source
            out.append(Case(folder.name, Context(seed_source=source, block=block)))
    return out


def strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()
    return tree


@functools.lru_cache(maxsize=64)
def top_level(source: str) -> list[tuple[str, str]]:
    """``(name, dump)`` of each top-level statement (name "" when it has none)."""
    out = []
    for node in strip_docstrings(ast.parse(source)).body:
        name = ""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = node.name
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            name = node.targets[0].id
        out.append((name, ast.dump(node)))
    return out


def changed_names(parent: str, child: str) -> set[str]:
    """Names of the top-level statements that differ, for children with the same statements."""
    a, b = top_level(parent), top_level(child)
    assert len(a) == len(b), "statement count changed"
    return {
        na or f"<{i}>" for i, ((na, da), (_, db)) in enumerate(zip(a, b, strict=True)) if da != db
    }


@functools.lru_cache(maxsize=64)
def _tree(source: str) -> ast.Module:
    return ast.parse(source)


def module_value(source: str, name: str) -> object:
    for node in _tree(source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == name
        ):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return ast.unparse(node.value)
    raise KeyError(name)


def float_at(source: str, line: int) -> list[float]:
    return [
        n.value
        for n in ast.walk(_tree(source))
        if isinstance(n, ast.Constant) and type(n.value) is float and n.lineno == line
    ]


CLAUSE = re.compile(r"^(?P<where>[^:]+): (?P<old>.+) -> (?P<new>.+)$")
ELEMENT = re.compile(r"^(?P<name>\w+)\[(?P<i>\d+)\]$")
ELSEWHERE = re.compile(r"^(?P<key>[^@]+)@L(?P<line>\d+)( \w+)?$")


def check_value_claims(description: str, parent: str, child: str) -> set[str]:
    """Check every ``WHERE: OLD -> NEW`` clause; returns the statement names it claims."""
    claimed = set()
    for clause in description.split("; "):
        m = CLAUSE.match(clause)
        assert m, f"unparseable clause {clause!r}"
        where, old, new = m["where"], ast.literal_eval(m["old"]), ast.literal_eval(m["new"])
        assert old != new, clause
        if e := ELSEWHERE.match(where):
            line = int(e["line"])
            assert old in float_at(parent, line), (clause, float_at(parent, line))
            assert new in float_at(child, line), (clause, float_at(child, line))
            claimed.add(e["key"])
        elif e := ELEMENT.match(where):
            i = int(e["i"])
            assert module_value(parent, e["name"])[i] == old, clause
            assert module_value(child, e["name"])[i] == new, clause
            claimed.add(e["name"])
        else:
            assert module_value(parent, where) == old, clause
            assert module_value(child, where) == new, clause
            claimed.add(where)
    return claimed


def outside_block(source: str) -> tuple[str, str]:
    """The text before the START marker line (inclusive) and from the END marker line."""
    lines = source.splitlines(keepends=True)
    s = next(i for i, x in enumerate(lines) if START in x)
    e = next(i for i, x in enumerate(lines) if END in x)
    return "".join(lines[: s + 1]), "".join(lines[e:])


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
