"""``choice``: swap a constant's value for another of its declared alternatives.

Alternatives are declared in the target's ``[choices]`` (``ACTIVATION = ["gelu", "relu"]``)
or by a trailing comment on the seed's assignment line::

    ACTIVATION = "gelu"  # evo: choice(gelu, relu, silu)

``[choices]`` wins when both name a constant. When the seed's value is a string, the
alternatives are strings (quotes in the comment are optional); otherwise they are Python
expressions (names such as ``nn.GELU``, or numbers) compared by their canonical text.

Description: ``ACTIVATION: 'gelu' -> 'silu'`` (``repr`` of strings, code of expressions).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst
import numpy as np

from archive.program import Program
from operators.base import Child, Context, Operator, parent_parsed, replace_statements
from operators.errors import NoChild, OperatorConfigError
from operators.parsed import parsed
from operators.sites import Assignment, assignments, canonical_expr, node_code

CHOICE_COMMENT = re.compile(r"#\s*evo:\s*choice\((.*)\)")


@dataclass(frozen=True)
class ChoiceSpec:
    """The alternatives of one constant; ``strings`` tells how they are written in code."""

    name: str
    alternatives: tuple[str, ...]
    strings: bool


def current_value(value: cst.BaseExpression) -> tuple[str, bool] | None:
    """``(value, is_string)`` of a constant's expression: a string's text, or canonical code."""
    if isinstance(value, (cst.SimpleString, cst.ConcatenatedString)):
        v = value.evaluated_value
        return (v, True) if isinstance(v, str) else None
    canon = canonical_expr(node_code(value))
    return (canon, False) if canon is not None else None


def choice_specs(context: Context) -> dict[str, ChoiceSpec]:
    """Every declared choice, checked against the seed.

    Raises:
        OperatorConfigError: a choice names a constant the seed lacks, an alternative that is
            not valid code, or the seed's current value is not among its alternatives.
    """
    seed = parsed(context.seed_source)
    consts = assignments(seed, context.block)
    declared: dict[str, tuple[tuple[str, ...], str]] = {}
    for name, a in consts.items():
        comment = a.stmt.trailing_whitespace.comment
        m = CHOICE_COMMENT.search(comment.value) if comment else None
        if m:
            alts = tuple(x.strip().strip("'\"") for x in m.group(1).split(",") if x.strip())
            declared[name] = (alts, f"seed line {a.unit.code_line}")
    for name, alts in context.choices.items():
        declared[name] = (tuple(alts), f"choices.{name}")
    specs = {}
    for name, (alts, origin) in sorted(declared.items()):
        if len(set(alts)) < 2:
            raise OperatorConfigError(
                f"{origin}: a choice needs at least two different alternatives, got {list(alts)}"
            )
        if name not in consts:
            where = " inside the evolve block" if context.block else ""
            raise OperatorConfigError(
                f"{origin}: the seed has no module-level constant "
                f"{name}{where}; fix the name or add the constant"
            )
        cur = current_value(consts[name].value)
        if cur is None:
            raise OperatorConfigError(
                f"{origin}: {name}'s value in the seed is neither a string "
                "nor a simple expression; a choice cannot swap it"
            )
        value, strings = cur
        if not strings:
            canon = [canonical_expr(a) for a in alts]
            bad = [a for a, c in zip(alts, canon, strict=True) if c is None]
            if bad:
                raise OperatorConfigError(
                    f"{origin}: alternative {bad[0]!r} of {name} is not a "
                    "Python expression (the seed's value is not a string)"
                )
            alts = tuple(c for c in canon if c is not None)
        if value not in alts:
            raise OperatorConfigError(
                f"{origin}: the seed's value of {name} ({value!r}) is not "
                f"among the alternatives {list(alts)}; add it"
            )
        specs[name] = ChoiceSpec(name, tuple(dict.fromkeys(alts)), strings)
    return specs


def new_value(old: cst.BaseExpression, alt: str, strings: bool) -> cst.BaseExpression:
    """The expression for alternative ``alt`` in place of ``old`` (a string keeps its quotes)."""
    if not strings:
        return cst.parse_expression(alt)
    quote = old.quote if isinstance(old, cst.SimpleString) else '"'
    if len(quote) == 1 and quote not in alt and "\\" not in alt and "\n" not in alt:
        return cst.SimpleString(f"{quote}{alt}{quote}")
    return cst.SimpleString(repr(alt))


class MutateChoice(Operator):
    """Swap one declared choice's value (see the module docstring)."""

    name = "choice"
    arity = 1

    def propose(
        self, parents: Sequence[Program], context: Context, rng: np.random.Generator
    ) -> Child:
        self._check_arity(parents)
        specs = choice_specs(context)
        p = parent_parsed(parents[0])
        consts = assignments(p, context.block)
        options: list[tuple[ChoiceSpec, Assignment, str, bool]] = []
        for name, spec in specs.items():
            a = consts.get(name)
            cur = current_value(a.value) if a else None
            if cur is not None and cur[1] == spec.strings:
                if any(alt != cur[0] for alt in spec.alternatives):
                    options.append((spec, a, cur[0], cur[1]))
        if not options:
            raise NoChild("choice: the parent has none of the declared choice constants")
        spec, a, cur, strings = options[int(rng.integers(len(options)))]
        alts = [alt for alt in spec.alternatives if alt != cur]
        alt = alts[int(rng.integers(len(alts)))]
        stmt = a.with_value(new_value(a.value, alt, strings))
        source = replace_statements(p, {a.unit.index: stmt})
        shown = (repr(cur), repr(alt)) if strings else (cur, alt)
        return self._finish(source, parents, context, f"{spec.name}: {shown[0]} -> {shown[1]}")
