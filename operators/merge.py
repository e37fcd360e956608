"""``merge``: a 3-way merge that stacks the edits of parent B onto parent A.

Independent improvements found in different niches are usually additive; merging the edits
B made (relative to the common ancestor, by default the seed) into A tests the stack. The
grain is the top-level statement, keyed as in :mod:`operators.statements`:

- changed only in B: B's version; changed only in A, or the same way in both: A's version;
- changed in both, differently, or changed in one and removed in the other: a *conflict*,
  resolved by picking a side at random (``on_conflict="random"``) or refused
  (``on_conflict="reject"``: :class:`NoChild`);
- removed in B and unchanged in A: removed;
- added in B: inserted after the nearest statement that precedes it in B and is in the
  result (statements appended at B's end stay at the end, in order).

"Changed" is canonical: an edit to comments only is no change. So merging a B that made no
edit gives back A exactly, and merging onto an A that made no edit gives B (canonically).

Description: ``merge B onto A: took GPT, LEARNING_RATE; conflicts: setup_optimizer (B)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst
import numpy as np

from archive.program import Program
from operators.base import Child, Context, Operator, parent_parsed, render_body
from operators.errors import NoChild
from operators.parsed import parsed
from operators.statements import units

ON_CONFLICT = ("random", "reject")


@dataclass(frozen=True)
class MergeResult:
    """The merged source, what came from B, and the conflicts with the side chosen."""

    source: str
    taken: tuple[str, ...]
    conflicts: tuple[str, ...]


def three_way_merge(
    a_source: str,
    b_source: str,
    ancestor_source: str,
    *,
    rng: np.random.Generator,
    on_conflict: str = "random",
) -> MergeResult:
    """Apply the edits ``b_source`` made relative to ``ancestor_source`` onto ``a_source``.

    Raises:
        ValidationError: a source does not parse.
        NoChild: a conflict with ``on_conflict="reject"``.
    """
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, got {on_conflict!r}")
    pa, pb, po = parsed(a_source), parsed(b_source), parsed(ancestor_source)
    ua, ub, uo = units(pa), units(pb), units(po)
    o = {u.key: u for u in uo}
    b = {u.key: u for u in ub}
    a_keys = {u.key for u in ua}
    a_body, b_body = pa.module.body, pb.module.body
    taken: list[str] = []
    conflicts: list[str] = []

    def pick_b(key: str, why: str) -> bool:
        if on_conflict == "reject":
            raise NoChild(f"merge: conflict in {key!r} ({why})")
        use_b = bool(rng.random() < 0.5)
        conflicts.append(f"{key} ({'B' if use_b else 'A'})")
        return use_b

    out: list[tuple[str, cst.BaseStatement, str]] = []
    for u in ua:
        key = u.key
        uo_, ub_ = o.get(key), b.get(key)
        a_changed = uo_ is None or not u.same(uo_)
        if uo_ is None:  # added in A
            if ub_ is not None and not u.same(ub_) and pick_b(key, "added differently in both"):
                out.append((key, b_body[ub_.index], ub_.code))
                taken.append(key)
            else:
                out.append((key, a_body[u.index], u.code))
        elif ub_ is None:  # removed in B
            if a_changed and not pick_b(key, "changed in A, removed in B"):
                out.append((key, a_body[u.index], u.code))
            else:
                taken.append(f"-{key}")
        elif not ub_.same(uo_) and (
            not a_changed or (not u.same(ub_) and pick_b(key, "changed in both"))
        ):
            out.append((key, b_body[ub_.index], ub_.code))
            taken.append(key)
        else:
            out.append((key, a_body[u.index], u.code))

    previous: str | None = None
    for u in ub:
        key = u.key
        if key not in a_keys and (
            key not in o or (not u.same(o[key]) and pick_b(key, "changed in B, removed in A"))
        ):
            at = _after(out, previous)
            out.insert(at, (key, b_body[u.index], u.code))
            taken.append(f"+{key}")
        if any(k == key for k, _, _ in out):
            previous = key
    # B's statements keep B's text (comments and all) when B's layout can be spliced
    texts = {id(b_body[u.index]): u.code for u in ub} if pb.layout.spliceable else None
    source = render_body(pa, [stmt for _, stmt, _ in out], texts=texts)
    return MergeResult(source, tuple(taken), tuple(conflicts))


def _after(out: list[tuple[str, cst.BaseStatement, str]], key: str | None) -> int:
    if key is None:
        return 0
    for i, (k, _, _) in enumerate(out):
        if k == key:
            return i + 1
    return len(out)


class ThreeWayMerge(Operator):
    """Stack parent B's edits onto parent A (see the module docstring).

    Args:
        on_conflict: ``"random"`` picks a side per conflicting statement; ``"reject"`` gives
            no child when any statement conflicts.
    """

    name = "merge"
    arity = 2

    def __init__(self, *, on_conflict: str = "random"):
        if on_conflict not in ON_CONFLICT:
            raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, got {on_conflict!r}")
        self.on_conflict = on_conflict

    def propose(
        self, parents: Sequence[Program], context: Context, rng: np.random.Generator
    ) -> Child:
        self._check_arity(parents)
        pa, pb = parent_parsed(parents[0]), parent_parsed(parents[1])
        ancestor = (
            context.ancestor_source if context.ancestor_source is not None else context.seed_source
        )
        result = three_way_merge(
            parents[0].source, parents[1].source, ancestor, rng=rng, on_conflict=self.on_conflict
        )
        h = parsed(result.source).hash
        if h == pa.hash:
            raise NoChild("merge: B's edits add nothing to A")
        if h == pb.hash:
            raise NoChild("merge: the result equals parent B")
        desc = "merge B onto A: took " + (", ".join(result.taken) or "nothing")
        if result.conflicts:
            desc += "; conflicts: " + ", ".join(result.conflicts)
        return self._finish(result.source, parents, context, desc)
