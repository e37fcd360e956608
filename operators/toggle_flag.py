"""``toggle``: flip a boolean constant, or drop or duplicate a statement the target allows.

The options are every module-level ``FLAG = True|False`` constant, and, for each top-level
statement key in ``context.droppable`` that the parent still has, dropping it and duplicating
it; one option is drawn uniformly. A dropped statement's leading comments are kept (they may
hold a region label or a block marker); a duplicate is inserted right after the original.

Descriptions: ``USE_QK_NORM: True -> False``, ``drop <key>``, ``duplicate <key>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst
import numpy as np

from archive.program import Program
from operators.base import Child, Context, Operator, parent_parsed, render_body, replace_statements
from operators.errors import NoChild
from operators.parsed import Parsed
from operators.sites import assignments
from operators.statements import editable, units


def bool_flags(p: Parsed, block: bool) -> dict[str, bool]:
    """Module-level constants whose value is ``True`` or ``False``."""
    out = {}
    for name, a in assignments(p, block).items():
        if (
            isinstance(a.value, cst.Name)
            and a.value.value in ("True", "False")
            and not a.value.lpar
        ):
            out[name] = a.value.value == "True"
    return out


class ToggleFlag(Operator):
    """Flip a boolean constant, or drop/duplicate a droppable statement."""

    name = "toggle"
    arity = 1

    def propose(
        self, parents: Sequence[Program], context: Context, rng: np.random.Generator
    ) -> Child:
        self._check_arity(parents)
        p = parent_parsed(parents[0])
        flags = bool_flags(p, context.block)
        by_key = {u.key: u for u in units(p) if editable(u, context.block)}
        options = [("flip", name) for name in flags]
        for key in context.droppable:
            if key in by_key:
                options += [("drop", key), ("duplicate", key)]
        if not options:
            raise NoChild("toggle: the parent has no boolean constant and no droppable statement")
        action, name = options[int(rng.integers(len(options)))]
        if action == "flip":
            a = assignments(p, context.block)[name]
            new = not flags[name]
            source = replace_statements(p, {a.unit.index: a.with_value(cst.Name(str(new)))})
            return self._finish(source, parents, context, f"{name}: {flags[name]} -> {new}")
        i = by_key[name].index
        body = list(p.module.body)
        stmt = body[i]
        if action == "duplicate":
            body.insert(i + 1, stmt.with_changes(leading_lines=()))
        else:
            del body[i]
            kept = tuple(getattr(stmt, "leading_lines", ()))
            if kept and i < len(body):
                nxt = body[i]
                body[i] = nxt.with_changes(leading_lines=kept + tuple(nxt.leading_lines))
            elif kept:
                footer = kept + tuple(p.module.footer)
                return self._finish(render_body(p, body, footer), parents, context, f"drop {name}")
        return self._finish(render_body(p, body), parents, context, f"{action} {name}")
