"""Top-level statements as keyed units: the grain of edit descriptors, crossover and merge.

A unit is one item of the libcst module body (a ``def``, a ``class``, a compound statement,
or one line of simple statements) with the stdlib ast nodes on its lines. Its key is stable
across variants of a program, so that "the same statement" can be found in a parent, its
child and their ancestor:

- ``def``/``class``: its name; an assignment to one plain name: that name;
- an import: ``import:`` + its canonical text (imports are identified by what they import);
- anything else (``while True:``, ``with ...:``, a bare call): ``<Type>`` of its first node;
- a key seen before in the same module gets ``#k`` for its k-th repeat (``model#1``).

Unit kinds: ``def``, ``class``, ``constant`` (an UPPER_CASE name bound once at module level),
``assign``, ``import``, ``docstring`` (a unit with no code once docstrings are stripped),
``other``.
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass
from functools import cached_property

import libcst as cst

from operators.errors import ValidationError
from operators.markers import check_markers, find_markers
from operators.parsed import Parsed

CONSTANT_NAME = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
"""Module-level names that the structural operators treat as configuration constants."""

REGION_COMMENT = re.compile(r"#\s*evo:\s*region\s*=\s*([A-Za-z0-9_.\-]+)")


@dataclass(frozen=True)
class Unit:
    """One keyed top-level statement; see the module docstring."""

    index: int
    key: str
    kind: str
    nodes: tuple[ast.stmt, ...]
    code_line: int
    last_line: int
    in_block: bool
    region_comment: str | None
    code: str

    @cached_property
    def dump(self) -> str:
        """Canonical structure (docstrings, comments and positions excluded)."""
        return "\n".join(ast.dump(n) for n in self.nodes)

    def same(self, other: Unit | None) -> bool:
        """True when ``other`` is canonically the same statement (cheap when texts match)."""
        if other is None:
            return not self.nodes
        return self.code == other.code or self.dump == other.dump

    @property
    def name(self) -> str:
        return self.key.split("#", 1)[0]


def marker_lines(p: Parsed) -> tuple[tuple[int, str], ...]:
    """``(line, START|END)`` for every comment holding an EVOLVE-BLOCK marker (cached on ``p``).

    See :func:`operators.markers.find_markers`: comments count, strings and docstrings do not.
    """
    cached = p.__dict__.get("_markers")
    if cached is None:
        cached = p.__dict__["_markers"] = find_markers(p.source)
    return cached


def block_spans(p: Parsed) -> list[tuple[int, int]]:
    """The evolve block's marker lines ``[(start, end)]``, or ``[]`` without markers.

    Raises:
        ValidationError: markers that break the rules of :mod:`operators.markers`.
    """
    span = check_markers(marker_lines(p))
    return [span] if span else []


def _key_and_kind(nodes: list[ast.stmt]) -> tuple[str, str]:
    if not nodes:
        return "<docstring>", "docstring"
    n = nodes[0]
    if len(nodes) == 1:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return n.name, "def"
        if isinstance(n, ast.ClassDef):
            return n.name, "class"
        target = None
        if isinstance(n, ast.Assign) and len(n.targets) == 1:
            target = n.targets[0]
        elif isinstance(n, (ast.AnnAssign, ast.AugAssign)):
            target = n.target
        if isinstance(target, ast.Name):
            upper = CONSTANT_NAME.match(target.id) and not isinstance(n, ast.AugAssign)
            return target.id, "constant" if upper else "assign"
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            return "import:" + ast.unparse(n), "import"
    return f"<{type(n).__name__}>", "other"


def units(p: Parsed) -> tuple[Unit, ...]:
    """The keyed top-level units of a parsed source, in order (cached on ``p``)."""
    cached = p.__dict__.get("_units")
    if cached is not None:
        return cached
    module, layout = p.module, p.layout
    starts = list(layout.starts) if layout.spliceable else _starts_by_codegen(module)
    by_unit: list[list[ast.stmt]] = [[] for _ in starts]
    for node in p.tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])
        by_unit[max(0, bisect.bisect_right(starts, first) - 1)].append(node)
    try:
        spans = block_spans(p)
    except ValidationError:
        spans = []  # broken markers mark no block; a block target refuses them when it loads
    n_lines = len(p.lines)
    seen: dict[str, int] = {}
    out = []
    for i, stmt in enumerate(module.body):
        key, kind = _key_and_kind(by_unit[i])
        k = seen.get(key, 0)
        seen[key] = k + 1
        if k:
            key = f"{key}#{k}"
            if kind == "constant":
                kind = "assign"  # a name bound twice is not a plain constant
        first = starts[i]
        code_line = first + len(getattr(stmt, "leading_lines", ()))
        last = (starts[i + 1] - 1) if i + 1 < len(starts) else n_lines
        if by_unit[i]:
            last = max(getattr(n, "end_lineno", None) or n.lineno for n in by_unit[i])
        region = None
        # libcst keeps comments at the top of the file in the module header: they are
        # directly above the first statement too
        for line in p.lines[(first if i else 1) - 1 : code_line - 1]:
            m = REGION_COMMENT.search(line)
            if m:
                region = m.group(1)
        prev = out[-1] if out else None
        if (
            region is None
            and prev is not None
            and prev.region_comment
            and kind in ("constant", "assign")
            and prev.kind in ("constant", "assign")
            and code_line == prev.last_line + 1
        ):
            region = prev.region_comment  # the same paragraph of constants: the same region
        in_block = any(s < code_line and last < e for s, e in spans)
        out.append(
            Unit(
                i,
                key,
                kind,
                tuple(by_unit[i]),
                code_line,
                last,
                in_block,
                region,
                layout.chunks[i],
            )
        )
    result = tuple(out)
    p.__dict__["_units"] = result
    return result


def _starts_by_codegen(module: cst.Module) -> list[int]:
    line = 1 + len(module.header)  # each header item is one blank or comment line
    out = []
    for s in module.body:
        out.append(line)
        line += module.code_for_node(s).count("\n")
    return out


def editable(u: Unit, block: bool) -> bool:
    """True when structural operators may edit unit ``u`` (inside the block for block targets)."""
    return u.in_block or not block
