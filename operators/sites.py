"""Where the structural operators may edit: module-level constants and numeric literals.

A *constant* is a top-level ``NAME = value`` (or ``NAME: T = value``) with an UPPER_CASE name
bound once, inside the evolve block for block targets. A *number site* is one numeric literal
that :class:`~operators.mutate_constants.MutateConstants` may perturb:

- module level: a constant whose value is a number (``LR = 3e-3``, ``BIAS = -1``) or a flat
  tuple/list of numbers (``ADAM_BETAS = (0.9, 0.95)``, one site per element); booleans are
  toggles, not numbers, and ``SEED``-like names are never perturbed;
- elsewhere: float literals inside functions, classes and top-level code, except ``0.0`` and
  ``1.0`` (identities, not hyperparameters) and exponents of ``**`` (``dim ** -0.5``).

Module-level sites come from the libcst module directly (top level only: cheap); elsewhere
sites are found on the stdlib ast (fast, with line numbers) and matched to the libcst literal
when a proposal picks one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import libcst as cst

from operators.descriptors import default_region
from operators.parsed import Parsed
from operators.perturb import FROZEN_NAMES, format_float
from operators.statements import Unit, editable, units

MAX_TUPLE = 8
"""Longer tuples/lists are tables (coefficients), not hyperparameters."""

_EMPTY_MODULE = cst.Module(body=[])


def node_code(node: cst.CSTNode) -> str:
    """The code of one libcst node, generated with the default module settings."""
    return _EMPTY_MODULE.code_for_node(node)


def canonical_expr(text: str) -> str | None:
    """An expression's text normalised by ``ast.unparse`` (spacing, quotes); None if invalid."""
    try:
        return ast.unparse(ast.parse(text.strip(), mode="eval"))
    except SyntaxError:
        return None


@dataclass(frozen=True)
class Assignment:
    """A module-level constant: its unit, statement and value expression."""

    unit: Unit
    stmt: cst.SimpleStatementLine
    value: cst.BaseExpression

    @property
    def name(self) -> str:
        return self.unit.name

    def with_value(self, value: cst.BaseExpression) -> cst.SimpleStatementLine:
        """The statement with its value replaced; the trailing comment is kept."""
        small = self.stmt.body[0]
        return self.stmt.with_changes(body=[small.with_changes(value=value)])


@dataclass(frozen=True)
class NumberSite:
    """One numeric literal that may be perturbed.

    ``expr`` is the node to replace (the literal, or ``-literal``); for elsewhere sites it is
    ``None`` until matched in the CST (see :func:`resolve`), and ``ordinal`` is the literal's
    index among the unit's float literals in source order.
    """

    unit_index: int
    value: int | float
    text: str
    name: str
    label: str
    base: str
    region: str
    ordinal: int = -1
    expr: cst.BaseExpression | None = None


def assignments(p: Parsed, block: bool) -> dict[str, Assignment]:
    """Module-level constants by name (editable ones only for block targets)."""
    out: dict[str, Assignment] = {}
    body = p.module.body
    for u in units(p):
        if u.kind != "constant" or not editable(u, block):
            continue
        stmt = body[u.index]
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            continue
        small = stmt.body[0]
        if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
            out[u.name] = Assignment(u, stmt, small.value)
    return out


def number_of(expr: cst.BaseExpression) -> tuple[int | float, str] | None:
    """``(value, literal text)`` of a plain numeric literal, possibly negated; else None."""
    neg = False
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        neg, expr = True, expr.expression
    if isinstance(expr, (cst.Integer, cst.Float)) and not expr.lpar:
        v = expr.evaluated_value
        if isinstance(v, (int, float)):
            return (-v if neg else v), expr.value
    return None


def number_expr(value: int | float, like: str = "") -> cst.BaseExpression:
    """A literal expression for ``value`` (``-x`` as a unary minus)."""
    mag = abs(value)
    node: cst.BaseExpression = (
        cst.Integer(str(mag)) if isinstance(value, int) else cst.Float(format_float(mag, like))
    )
    return cst.UnaryOperation(operator=cst.Minus(), expression=node) if value < 0 else node


def module_sites(p: Parsed, block: bool, labels: dict[str, str]) -> list[NumberSite]:
    """Number sites in module-level constants."""
    out = []
    for name, a in assignments(p, block).items():
        if FROZEN_NAMES.search(name):
            continue
        region = labels.get(a.unit.key, "constants")
        num = number_of(a.value)
        if num is not None:
            out.append(
                NumberSite(a.unit.index, num[0], num[1], name, name, name, region, expr=a.value)
            )
            continue
        if isinstance(a.value, (cst.Tuple, cst.List)) and len(a.value.elements) <= MAX_TUPLE:
            for i, el in enumerate(a.value.elements):
                num = number_of(el.value)
                if num is not None:
                    out.append(
                        NumberSite(
                            a.unit.index,
                            num[0],
                            num[1],
                            f"{name}[{i}]",
                            f"{name}[{i}]",
                            name,
                            region,
                            expr=el.value,
                        )
                    )
    return out


def elsewhere_sites(p: Parsed, block: bool, labels: dict[str, str]) -> list[NumberSite]:
    """Float literals outside the constant assignments (cached on ``p`` per ``block`` and
    ``labels``: a site's region comes from ``labels``)."""
    cache = p.__dict__.setdefault("_elsewhere", {})
    key = (block, frozenset(labels.items()))
    if key in cache:
        return cache[key]
    out = []
    for u in units(p):
        if u.kind in ("constant", "docstring") or not editable(u, block):
            continue
        parents: dict[int, ast.AST] = {}
        floats = []
        for root in u.nodes:
            for node in ast.walk(root):
                for child in ast.iter_child_nodes(node):
                    parents[id(child)] = node
                if isinstance(node, ast.Constant) and type(node.value) is float:
                    floats.append(node)
        floats.sort(key=lambda n: (n.lineno, n.col_offset))
        region = labels.get(u.key) or u.region_comment or default_region(u)
        for ordinal, node in enumerate(floats):
            if node.value in (0.0, 1.0) or _is_exponent(node, parents):
                continue
            hint = _hint(node, parents)
            label = f"{u.key}@L{node.lineno}" + (f" {hint}" if hint else "")
            out.append(
                NumberSite(
                    u.index,
                    node.value,
                    repr(node.value),
                    hint,
                    label,
                    hint,
                    region,
                    ordinal=ordinal,
                )
            )
    cache[key] = out
    return out


def _is_exponent(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    up = parents.get(id(node))
    if isinstance(up, ast.UnaryOp):
        node, up = up, parents.get(id(up))
    return isinstance(up, ast.BinOp) and isinstance(up.op, ast.Pow) and up.right is node


def _hint(node: ast.AST, parents: dict[int, ast.AST]) -> str:
    """The name a literal is bound to: a keyword argument, or an assignment's target."""
    up = parents.get(id(node))
    if isinstance(up, ast.UnaryOp):
        node, up = up, parents.get(id(up))
    if isinstance(up, ast.keyword) and up.arg:
        return up.arg
    if isinstance(up, (ast.Assign, ast.AnnAssign)) and up.value is node:
        target = up.targets[0] if isinstance(up, ast.Assign) else up.target
        if isinstance(target, ast.Name):
            return target.id
        if isinstance(target, ast.Attribute):
            return target.attr
    return ""


class _Floats(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[cst.Float] = []

    def visit_Float(self, node: cst.Float) -> None:
        self.found.append(node)


def resolve(p: Parsed, site: NumberSite) -> NumberSite | None:
    """The site with ``expr`` set to its libcst literal; None if the two parsers disagree."""
    if site.expr is not None:
        return site
    visitor = _Floats()
    p.module.body[site.unit_index].visit(visitor)
    if site.ordinal >= len(visitor.found):
        return None
    node = visitor.found[site.ordinal]
    if node.evaluated_value != site.value:
        return None
    return NumberSite(
        site.unit_index,
        site.value,
        node.value,
        site.name,
        site.label,
        site.base,
        site.region,
        site.ordinal,
        node,
    )


class ReplaceNodes(cst.CSTTransformer):
    """Replace nodes by identity (libcst nodes are immutable, so identity is safe)."""

    def __init__(self, replacements: dict[int, cst.CSTNode]):
        super().__init__()
        self.replacements = replacements

    def on_leave(self, original_node, updated_node):  # noqa: ANN001 - libcst's signature
        return self.replacements.get(id(original_node), updated_node)
