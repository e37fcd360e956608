"""The edits of a program against the seed, one per top-level statement, and any subset of
them applied to the seed.

The unit of an edit is a top-level statement (``operators.statements``: a ``def``, a class, a
constant, one line of module code), matched between the two programs by its key. Because
statements are spliced whole, every edit applies to the seed on its own, and any subset gives
a program that parses: ``compose(edits, keep)`` is the seed with the edits in ``keep`` and
the best program with all of them. An edit inside a function is the whole function; two
edits in one function are one edit here.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass

from analysis.errors import AnalysisError


@dataclass(frozen=True)
class Edit:
    """One changed top-level statement.

    Attributes:
        key: the statement's key (its name for a def, class or constant).
        kind: ``changed``, ``added`` (only in the program) or ``removed`` (only in the seed).
        seed_code: the statement as the seed has it ('' when added).
        code: the statement as the program has it ('' when removed).
        summary: one line: ``NAME: 6 -> 8`` for a constant, else what changed and where.
    """

    key: str
    kind: str
    seed_code: str
    code: str
    summary: str

    def diff(self) -> str:
        """Unified diff of this statement, seed -> program."""
        lines = difflib.unified_diff(
            self.seed_code.splitlines(keepends=True),
            self.code.splitlines(keepends=True),
            fromfile=f"seed:{self.key}",
            tofile=f"program:{self.key}",
            n=2,
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@dataclass(frozen=True)
class EditSet:
    """The edits of ``program`` against ``seed``, with what is needed to recombine them."""

    seed: str
    program: str
    edits: tuple[Edit, ...]
    _seed_units: tuple[tuple[str, str], ...]  # (key, code) in the seed's order
    _prog_units: tuple[tuple[str, str], ...]  # (key, code) in the program's order
    _header: str
    _footer: str

    def compose(self, keep: set[str] | frozenset[str]) -> str:
        """The seed with the edits whose keys are in ``keep`` applied (the program with all)."""
        kinds = {e.key: e.kind for e in self.edits}
        seed_code = dict(self._seed_units)
        out: list[tuple[str, str]] = []
        for key, code in self._prog_units:
            kind = kinds.get(key)
            if kind is None or key in keep:
                out.append((key, code))
            elif kind == "changed":
                out.append((key, seed_code[key]))
            # an added statement that is not kept is left out
        placed = {k for k, _ in out}
        # A removed statement that is not kept goes back after the seed statement before it.
        for i, (key, code) in enumerate(self._seed_units):
            if key in placed or kinds.get(key) != "removed" or key in keep:
                continue
            before = [k for k, _ in self._seed_units[:i] if k in placed]
            at = 1 + max(
                (j for j, (k, _) in enumerate(out) if before and k == before[-1]), default=-1
            )
            out.insert(at, (key, code))
            placed.add(key)
        return self._header + "".join(code for _, code in out) + self._footer


def edit_set(seed: str, program: str) -> EditSet:
    """Split ``program``'s difference from ``seed`` into per-statement edits.

    Raises:
        AnalysisError: either source does not parse.
    """
    from operators.parsed import parsed
    from operators.statements import units

    try:
        ps, pp = parsed(seed), parsed(program)
        su, pu = units(ps), units(pp)
        layout = pp.layout
    except ValueError as e:
        raise AnalysisError(f"cannot split the program into edits: {e}") from None
    seed_units = tuple((u.key, u.code) for u in su)
    prog_units = tuple((u.key, u.code) for u in pu)
    by_seed = {u.key: u for u in su}
    by_prog = {u.key: u for u in pu}
    edits = []
    for u in pu:
        s = by_seed.get(u.key)
        if s is None:
            if u.kind != "docstring":
                edits.append(Edit(u.key, "added", "", u.code, _summary(u.key, "", u.code)))
        elif not s.same(u):
            edits.append(Edit(u.key, "changed", s.code, u.code, _summary(u.key, s.code, u.code)))
    for s in su:
        if s.key not in by_prog and s.kind != "docstring":
            edits.append(Edit(s.key, "removed", s.code, "", _summary(s.key, s.code, "")))
    header = layout.header if layout.spliceable else ""
    footer = layout.footer if layout.spliceable else ""
    return EditSet(seed, program, tuple(edits), seed_units, prog_units, header, footer)


def _value(code: str) -> str | None:
    """The right-hand side of a one-name assignment statement, as written canonically."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    if len(tree.body) == 1 and isinstance(tree.body[0], (ast.Assign, ast.AnnAssign)):
        value = tree.body[0].value
        return None if value is None else ast.unparse(value)
    return None


def _summary(key: str, old: str, new: str) -> str:
    a, b = _value(old) if old else None, _value(new) if new else None
    if old and new and a is not None and b is not None:
        return f"{key}: {a} -> {b}"
    if not old:
        return f"adds {key}" + (f" = {b}" if b is not None else "")
    if not new:
        return f"removes {key}"
    sm = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    plus = minus = 0
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op != "equal":
            minus += i2 - i1
            plus += j2 - j1
    return f"changes {key} (+{plus}/-{minus} lines)"
