"""Edit descriptors: what a child changed relative to the seed, usable as niche descriptors.

**Regions.** Each top-level statement of the seed gets a label. A comment line
``# evo: region=NAME`` among the comment lines directly above a statement (between it and
the previous statement) labels that statement, and, when it is a constant, the constants that
follow it in the same paragraph (no blank line between them), so a block of constants can be
split into the regions its constants configure. Unlabelled statements get a default:
a ``def``/``class`` its own name, an UPPER_CASE constant ``"constants"``, an import
``"imports"``, anything else (setup code, the training loop) ``"main"``. A label on a
``def`` never spreads to the constants after it, and a blank line ends a paragraph of
constants.

**Edit size.** The number of AST nodes inserted, deleted or changed between the seed and the
child, summed over the changed top-level statements: a changed literal counts 1, a new
statement counts all its nodes, a replaced subtree counts the larger of the two. Lists (bodies,
arguments) are aligned with difflib, so inserting one line into a long function counts that
line, not the rest of the function. Docstrings and comments count 0; context nodes
(``Load``/``Store``) are not counted. ``size_bin`` is the log2 bin: 0 for 0, 1 for 1,
2 for 2-3, 3 for 4-7, ... (``size.bit_length()``).

**Constants.** Names of module-level UPPER_CASE constants whose value changed, was added or was
removed.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass
from typing import Any

from operators.parsed import parsed
from operators.statements import Unit, units


@dataclass(frozen=True)
class EditDescriptors:
    """What a child changed relative to the seed (see the module docstring).

    Attributes:
        regions: sorted labels of the changed regions.
        region: the one label for the niche: the region, ``"multi"`` or ``"none"``.
        size: changed AST nodes.
        size_bin: log2 bin of ``size``.
        constants: sorted names of the module-level constants that changed.
    """

    regions: tuple[str, ...]
    region: str
    size: int
    size_bin: int
    constants: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The form stored in ``Program.descriptors``."""
        return {
            "region": self.region,
            "edit_size": self.size,
            "edit_size_bin": self.size_bin,
            "constants": list(self.constants),
        }


def default_region(u: Unit) -> str:
    """The label of an unlabelled statement."""
    if u.kind in ("def", "class"):
        return u.name
    return {"constant": "constants", "import": "imports"}.get(u.kind, "main")


def regions(seed_source: str) -> dict[str, str]:
    """Map each top-level statement key of the seed to its region label.

    Example:
        >>> regions("# evo: region=opt\\ndef step(): pass\\nLR = 0.1\\n")
        {'step': 'opt', 'LR': 'constants'}
    """
    return {
        u.key: u.region_comment or default_region(u)
        for u in units(parsed(seed_source))
        if u.kind != "docstring"
    }


def size_bin(size: int) -> int:
    """0 for 0, 1 for 1, 2 for 2-3, 3 for 4-7, ..."""
    return max(0, size).bit_length()


def edit_descriptors(child_source: str, seed_source: str) -> EditDescriptors:
    """The edit descriptors of ``child_source`` relative to ``seed_source``."""
    old = {u.key: u for u in units(parsed(seed_source))}
    new = {u.key: u for u in units(parsed(child_source))}
    labels = regions(seed_source)
    changed_regions: set[str] = set()
    constants: set[str] = set()
    size = 0
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        if a.same(b) if a else b.same(a):
            continue
        unit = a or b
        label = labels.get(key) if a else (b.region_comment or default_region(b))
        changed_regions.add(label or default_region(unit))
        if (a and a.kind == "constant") or (b and b.kind == "constant"):
            constants.add(unit.name)
        size += _diff_lists(list(a.nodes) if a else [], list(b.nodes) if b else [])
    names = tuple(sorted(changed_regions))
    region = names[0] if len(names) == 1 else ("multi" if names else "none")
    return EditDescriptors(
        regions=names,
        region=region,
        size=size,
        size_bin=size_bin(size),
        constants=tuple(sorted(constants)),
    )


def _count(node: Any) -> int:
    if isinstance(node, ast.AST):
        return sum(1 for n in ast.walk(node) if not isinstance(n, ast.expr_context))
    if isinstance(node, list):
        return sum(_count(n) for n in node)
    return 0


def _dump(node: Any) -> str:
    return ast.dump(node) if isinstance(node, ast.AST) else repr(node)


def _diff(a: Any, b: Any) -> int:
    if type(a) is not type(b):
        return max(_count(a), _count(b), 1)
    if isinstance(a, list):
        return _diff_lists(a, b)
    if not isinstance(a, ast.AST):
        return int(a != b)
    own, below = 0, 0
    for name in a._fields:
        va, vb = getattr(a, name, None), getattr(b, name, None)
        if isinstance(va, (ast.AST, list)) or isinstance(vb, (ast.AST, list)):
            below += _diff(va, vb)
        elif type(va) is not type(vb) or va != vb:
            own = 1  # a changed scalar field (a literal's value, an operator, a name)
    return own + below


def _diff_lists(a: list, b: list) -> int:
    da, db = [_dump(x) for x in a], [_dump(x) for x in b]
    total = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, da, db, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        pairs = min(i2 - i1, j2 - j1)
        total += sum(_diff(a[i1 + k], b[j1 + k]) for k in range(pairs))
        total += sum(_count(x) for x in a[i1 + pairs : i2]) + sum(
            _count(x) for x in b[j1 + pairs : j2]
        )
    return total
