"""Validation and canonical form: the checks every child passes before it costs a GPU minute.

The canonical form of a program is ``ast.unparse`` of its stdlib ast with docstrings removed:
comments, docstrings, blank lines, quotes, parentheses and number spelling (``3e-3`` vs
``0.003``) are normalised away. Its sha256 is the Program id, so two programs that differ only
cosmetically share an id.

Dedup against the programs already evaluated is the loop's job: it keeps the set of ids it has
seen and asks :func:`is_duplicate` (a child equal to its own parent is already rejected here,
with ``kind="noop"``).
"""

from __future__ import annotations

from collections.abc import Collection

import libcst as cst

from operators.encoding import check_encodable
from operators.errors import ValidationError
from operators.markers import BLOCK_END, BLOCK_START, check_markers
from operators.parsed import parsed
from operators.statements import marker_lines, units


def parse(source: str) -> cst.Module:
    """Parse ``source`` with libcst (cached by exact text).

    Raises:
        ValidationError: one line, ``syntax error at line N: ...``.

    Example:
        >>> parse("x = 1\\n").code
        'x = 1\\n'
    """
    return parsed(source).module


def canonical_source(source: str) -> str:
    """``source`` with comments, docstrings and formatting normalised away.

    Example:
        >>> canonical_source("x = 3e-3  # rate\\n") == canonical_source("x=0.003\\n")
        True
    """
    return parsed(source).canonical


def canonical_hash(source: str) -> str:
    """sha256 hex of :func:`canonical_source`: the Program id."""
    return parsed(source).hash


def is_duplicate(program_id: str, seen: Collection[str]) -> bool:
    """True when ``program_id`` (a canonical hash) was already evaluated: skip the child."""
    return program_id in seen


def validate_child(
    child_source: str, parent_source: str, *, block: bool, protected: Collection[str] = ()
) -> str:
    """Check a child against its parent; returns the child's canonical hash.

    Args:
        child_source: the proposed program.
        parent_source: the program it was made from (for crossover: the first parent).
        block: True when only the ``EVOLVE-BLOCK-START``/``END`` region may change. Text
            outside the markers must then equal the parent's line for line (trailing
            whitespace aside), and the markers must still be there (:mod:`operators.markers`).
        protected: top-level statement keys (names of defs, classes, assignments) that must be
            present and canonically unchanged.

    Raises:
        ValidationError: with ``kind`` ``syntax``, ``encoding`` (a character the file's
            encoding cannot hold), ``markers``, ``outside_block``, ``protected`` or ``noop``
            (canonically identical to the parent: cosmetic only).
    """
    child, parent = parsed(child_source), parsed(parent_source)
    child.module  # noqa: B018 - parse with libcst: structural operators must be able to edit it
    check_encodable(child_source)  # the child must be writable as its file
    if block:
        _check_block(child_source, parent_source)
    if protected:
        old = {u.key: u for u in units(parent)}
        new = {u.key: u for u in units(child)}
        for key in sorted(protected):
            kept = new.get(key)
            if key in old and (kept is None or not kept.same(old[key])):
                raise ValidationError(
                    f"protected statement {key!r} was changed or removed; leave it as it is",
                    kind="protected",
                )
    if child.hash == parent.hash:
        raise ValidationError(
            "no-op: the child is canonically identical to its parent "
            "(comments, docstrings or formatting only)",
            kind="noop",
        )
    return child.hash


def _check_block(child_source: str, parent_source: str) -> None:
    child, parent = parsed(child_source), parsed(parent_source)
    pm, cm = marker_lines(parent), marker_lines(child)
    try:
        span = check_markers(pm)
    except ValidationError as e:
        raise ValidationError(f"the parent's markers: {e}", kind="markers") from None
    if span is None:
        raise ValidationError(
            f"the parent has no {BLOCK_START}/{BLOCK_END} markers, but the "
            "target is a block target",
            kind="markers",
        )
    if [k for _, k in cm] != [k for _, k in pm]:
        raise ValidationError(
            f"the child's {BLOCK_START}/{BLOCK_END} markers differ from its "
            f"parent's ({len(cm)} vs {len(pm)} markers): keep them",
            kind="markers",
        )
    # Outside segments: before the first START, between an END and the next START, after the
    # last END. Each must be the parent's, line for line.
    p_lines, c_lines = parent.lines, child.lines
    p_seg = _outside(p_lines, pm)
    c_seg = _outside(c_lines, cm)
    for (pa, pb), (ca, cb) in zip(p_seg, c_seg, strict=False):
        old = [s.rstrip() for s in p_lines[pa:pb]]
        new = [s.rstrip() for s in c_lines[ca:cb]]
        if old != new:
            at = next(
                (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                min(len(old), len(new)),
            )
            raise ValidationError(
                f"edit outside the evolve block at line {ca + at + 1} "
                f"(parent line {pa + at + 1}): only the block may change",
                kind="outside_block",
            )


def _outside(lines: list[str], markers: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """0-based half-open line ranges outside the blocks, marker lines included."""
    out, pos, inside = [], 0, False
    for line, kind in markers:
        if kind == BLOCK_START and not inside:
            out.append((pos, line))  # through the START line
            inside = True
        elif kind == BLOCK_END and inside:
            pos = line - 1  # from the END line
            inside = False
    if not inside:
        out.append((pos, len(lines)))
    return out
