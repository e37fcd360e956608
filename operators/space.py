"""A program's constants as a search space: inferred from the seed, read from any program,
written into a parent as a child.

One :class:`Param` per site the structural operators edit: each module-level numeric constant
(each element of a short numeric tuple, as ``NAME[i]``; see :mod:`operators.sites`), each
boolean flag and each declared choice (``[choices]`` or ``# evo: choice(...)``). ``SEED``-like
names are never part of it. Each param searches its own *coordinate*, chosen from the seed's
value and the constant's name with the rules of :mod:`operators.perturb`:

===========================================  =========  ===================  ====================
the seed's value                             kind       coordinate           initial bounds
===========================================  =========  ===================  ====================
any number, with ``[ranges] NAME = [a, b]``  float/int  the value (log when  ``[a, b]``, fixed
                                                        ``0 < a``, ``b >= 10a``)
a power of two ``v >= 2``                    pow2       ``log2 v``           ``log2 v -/+ 3``
another integer ``v != 0``                   int (log)  ``|v|``              ``|v|/8 .. 8|v|``
``0``                                        int        the value            ``0 .. 8``
``v >= 0.9``, or a beta/momentum/EMA         one_minus  ``1 - v`` (log)      ``/30 .. x30, <= 1``
``>= 0.5``
another float in (0, 1) with a probability,  float      ``v`` (log)          ``v/30 .. 30v, < 1``
fraction, ratio or decay name
another float ``v != 0``                     float      ``|v|`` (log)        ``|v|/30 .. 30|v|``
``0.0`` with a rate-like name                float      the value (log)      ``1e-5 .. 0.1``
``0.0`` with a probability-like name         float      the value            ``0 .. 0.5``
another ``0.0``                              float      the value            ``-1 .. 1``
``True``/``False``                           flag       the value            both
a declared choice                            choice     the alternative      the alternatives
===========================================  =========  ===================  ====================

Signs never change (a negative constant searches ``|v|``). Bounds from ``[ranges]`` are kept;
the others are *soft*: :meth:`Param.widened` grows them to hold the best program's value, and
by their whole width on a side where the best program sits in the outer tenth, never past
the param's natural limits (positive stays positive, a probability or a momentum stays in
[0, 1)). Floats start 1.5 decades either side of the seed's value, integers (sizes, steps,
epochs: the evaluation's cost grows with them) a factor of 8, three octaves, as powers of two
do: a prior for values a person picked by hand, not a truth; the widening lets a search follow
an optimum outside it.

Example:
    >>> from operators.parsed import parsed
    >>> seed = "LR = 0.01\\nDEPTH = 4\\nUSE_BIAS = True\\n"
    >>> space = infer_space(seed)
    >>> [(p.name, p.kind) for p in space.values()]
    [('LR', 'float'), ('DEPTH', 'pow2'), ('USE_BIAS', 'flag')]
    >>> read_point(parsed(seed), space)
    {'LR': 0.01, 'DEPTH': 4, 'USE_BIAS': True}
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import libcst as cst

from operators.mutate_choice import choice_specs, current_value, new_value
from operators.parsed import Parsed, parsed
from operators.perturb import (
    LOG_NAMES,
    NEAR_ONE_NAMES,
    PROBABILITY_NAMES,
    is_power_of_two,
    round_sig,
)
from operators.sites import ReplaceNodes, assignments, module_sites, number_expr
from operators.toggle_flag import bool_flags

KINDS = ("float", "int", "pow2", "one_minus", "flag", "choice")
FACTOR = 30.0
"""Soft bounds of a float start at the seed's value divided and multiplied by this."""
INT_FACTOR = 8.0
"""The same for an integer: three octaves either side, as :data:`POW2_OCTAVES` gives a power of
two, so a width of 33 gets the room a width of 32 does. Integers in training code are mostly
sizes and step counts, whose cost grows with them, so they get less room than floats: a
log-uniform first draw averages ``(F - 1/F) / ln(F^2)`` times the seed's size, 1.9x at ``F =
8`` (1.35x at 4). At 4x, ``EPOCHS = 3`` started at 1..12 and widened only once the best sat at
10 or more; on ``benchmarks/search_bench.py``'s ``mlp_digits`` (optimum near 50-70 epochs)
that cost ``tpe`` most of its gap to the TPE told the true space (BENCHMARKS.md, seventh
session)."""
POW2_OCTAVES = 3
EDGE = 0.1
"""A best coordinate in this outer fraction of a soft range widens that side..."""
WIDEN = 1.0
"""... by this fraction of the range's width."""
MOMENTUM_NAMES = re.compile(r"BETA|MOMENTUM|EMA", re.I)
"""Names whose value in [0.5, 1) is searched as ``1 - v`` on a log scale."""
SIGNIFICANT = 3
"""Sampled floats are written with this many significant digits (readable diffs)."""

Value = float | int | bool | str


@dataclass(frozen=True)
class Param:
    """One searchable constant; see the module docstring for kinds and coordinates.

    Attributes:
        name: the constant's name, ``NAME[i]`` for a tuple element.
        kind: one of :data:`KINDS`.
        low, high: bounds of the coordinate (exponents for ``pow2``, ``1 - v`` for
            ``one_minus``, ``|v|`` when ``sign`` is -1); unused for flags and choices.
        log: the coordinate is searched on a log scale.
        sign: -1 when the constant is negative (the coordinate is its magnitude).
        choices: the alternatives of a choice (strings, or canonical code when not
            ``strings``); ``(False, True)`` for a flag.
        strings: a choice whose alternatives are string literals.
        hard: bounds from ``[ranges]``: never widened.
        limits: natural limits of the coordinate that widening never crosses.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    sign: int = 1
    choices: tuple[Any, ...] = ()
    strings: bool = False
    hard: bool = False
    limits: tuple[float, float] = (-math.inf, math.inf)

    @property
    def numeric(self) -> bool:
        return self.kind not in ("flag", "choice")

    @property
    def integer(self) -> bool:
        return self.kind in ("int", "pow2")

    def encode(self, value: Value) -> float | int | bool | str | None:
        """The coordinate of a program's ``value``; None when it has no place in this param
        (another type, the other sign, a choice that is not declared)."""
        if self.kind == "flag":
            return value if isinstance(value, bool) else None
        if self.kind == "choice":
            return value if value in self.choices else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if self.integer and not isinstance(value, int):
            return None
        if self.kind == "pow2":
            return round(math.log2(value)) if value > 0 else None
        if self.kind == "one_minus":
            u = 1.0 - float(value)
            return u if u > 0 else None
        x = self.sign * value
        if self.log and x == 0:
            return self.low  # a zero sits at the bottom of a log range (weight decay 0)
        if self.log and x < 0:
            return None
        return int(x) if self.integer else float(x)

    def decode(self, x: float | int | bool | str) -> Value:
        """The program value of coordinate ``x``, rounded as a person would write it."""
        if self.kind in ("flag", "choice"):
            return x  # type: ignore[return-value]
        if self.kind == "pow2":
            return 2 ** int(x)
        if self.kind == "int":
            return self.sign * int(round(x))  # type: ignore[arg-type]
        if self.kind == "one_minus":
            return round(1.0 - round_sig(float(x), SIGNIFICANT - 1), 12)
        value = round_sig(float(x), SIGNIFICANT)
        if self.hard:  # rounding must not step outside [ranges]
            value = min(max(value, self.low), self.high)
        return self.sign * value

    def clip(self, x: float | int) -> float | int:
        """``x`` within the bounds (integers stay integers)."""
        y = min(max(x, self.low), self.high)
        return int(round(y)) if self.integer else float(y)

    def widened(self, best: float | None) -> Param:
        """Soft bounds that hold the ``best`` coordinate and widen on a side where it sits in
        the outer :data:`EDGE` of the range (see the module docstring). Other programs' values
        do not widen it: one wild step of a local operator must not spread the sampler thin."""
        if self.hard or not self.numeric or best is None or not math.isfinite(best):
            return self
        if self.log and best <= 0:
            return self
        f, g = (math.log10, lambda y: 10.0**y) if self.log else (float, float)
        low, high = min(self.low, best), max(self.high, best)
        if high > low:
            lo, hi = f(low), f(high)  # widen on the param's own scale
            t = (f(best) - lo) / (hi - lo)
            if t >= 1 - EDGE:
                high = g(hi + (hi - lo) * WIDEN)
            if t <= EDGE:
                low = g(lo - (hi - lo) * WIDEN)
        low, high = max(low, self.limits[0]), min(high, self.limits[1])
        if self.integer:
            low, high = math.floor(low + 1e-9), math.ceil(high - 1e-9)
        if (low, high) == (self.low, self.high):
            return self
        return dataclasses.replace(self, low=low, high=high)


def _numeric_param(name: str, value: int | float, bounds: tuple[float, float] | None) -> Param:
    if bounds is not None:
        lo, hi = bounds
        if isinstance(value, int):
            lo, hi = math.ceil(lo), math.floor(hi)
        log = lo > 0 and hi >= 10 * lo
        kind = "int" if isinstance(value, int) else "float"
        return Param(name, kind, lo, hi, log=log, hard=True, limits=(lo, hi))
    if isinstance(value, int):
        if is_power_of_two(value):
            e = int(math.log2(value))
            return Param(name, "pow2", max(1, e - POW2_OCTAVES), e + POW2_OCTAVES, limits=(0, 40))
        if value == 0:
            return Param(name, "int", 0, INT_FACTOR, limits=(0, math.inf))
        v, sign = abs(value), (1 if value > 0 else -1)
        low, high = max(1, math.floor(v / INT_FACTOR)), math.ceil(v * INT_FACTOR)
        return Param(name, "int", low, high, log=True, sign=sign, limits=(1, math.inf))
    prob = bool(PROBABILITY_NAMES.search(name))
    if value == 0.0:
        if LOG_NAMES.search(name) and not prob:
            return Param(name, "float", 1e-5, 0.1, log=True, limits=(1e-12, math.inf))
        if prob:
            return Param(name, "float", 0.0, 0.5, limits=(0.0, 0.99))
        return Param(name, "float", -1.0, 1.0)
    if 0.9 <= value < 1 or (MOMENTUM_NAMES.search(name) and 0.5 <= value < 1):
        u = 1.0 - value
        return Param(
            name, "one_minus", u / FACTOR, min(1.0, u * FACTOR), log=True, limits=(1e-9, 1.0)
        )
    if (prob or NEAR_ONE_NAMES.search(name)) and 0 < value < 1:
        return Param(
            name, "float", value / FACTOR, min(0.99, value * FACTOR), log=True, limits=(1e-9, 0.99)
        )
    v, sign = abs(value), (1 if value > 0 else -1)
    return Param(
        name, "float", v / FACTOR, v * FACTOR, log=True, sign=sign, limits=(1e-12, math.inf)
    )


def infer_space(
    seed_source: str,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    choices: Mapping[str, tuple[str, ...]] | None = None,
    block: bool = False,
) -> dict[str, Param]:
    """The search space of a seed's constants, in source order (see the module docstring).

    Args:
        seed_source: the seed program.
        ranges: ``NAME -> (low, high)`` from the target's ``[ranges]``.
        choices: ``NAME -> alternatives`` from the target's ``[choices]``.
        block: only constants inside the EVOLVE block count.

    Raises:
        ValidationError: the seed does not parse.
        OperatorConfigError: a declared choice does not fit the seed.
    """
    return dict(
        _infer(
            seed_source,
            tuple(sorted((ranges or {}).items())),
            tuple(sorted((choices or {}).items())),
            block,
        )
    )


@functools.lru_cache(maxsize=16)  # asked for every proposal; the seed is fixed for a run
def _infer(
    seed_source: str, ranges: tuple, choices: tuple, block: bool
) -> tuple[tuple[str, Param], ...]:
    from operators.base import Context
    from operators.descriptors import regions

    p = parsed(seed_source)
    bounds = dict(ranges)
    specs = choice_specs(Context(seed_source=seed_source, choices=dict(choices), block=block))
    out: dict[str, Param] = {}
    for site in module_sites(p, block, regions(seed_source)):
        if site.base not in specs:
            out[site.name] = _numeric_param(site.name, site.value, bounds.get(site.base))
    for name in bool_flags(p, block):
        out[name] = Param(name, "flag", choices=(False, True))
    for name, spec in specs.items():
        out[name] = Param(name, "choice", choices=spec.alternatives, strings=spec.strings)
    order = {a.name: i for i, a in enumerate(assignments(p, block).values())}
    return tuple(sorted(out.items(), key=lambda kv: (order.get(kv[0].split("[")[0], 0), kv[0])))


def read_point(p: Parsed, space: Mapping[str, Param], block: bool = False) -> dict[str, Value]:
    """The values of ``space``'s constants in program ``p`` (the ones it has).

    Raises:
        ValidationError: ``p`` does not parse.
    """
    out: dict[str, Value] = {}
    for site in module_sites(p, block, {}):
        if site.name in space and space[site.name].numeric:
            out[site.name] = site.value
    for name, flag in bool_flags(p, block).items():
        if name in space and space[name].kind == "flag":
            out[name] = flag
    consts = assignments(p, block)
    for name, param in space.items():
        if param.kind == "choice" and name in consts:
            cur = current_value(consts[name].value)
            if cur is not None and cur[1] == param.strings:
                out[name] = cur[0]
    return out


def write_point(
    p: Parsed, space: Mapping[str, Param], values: Mapping[str, Value], block: bool = False
) -> tuple[dict[int, cst.CSTNode], list[str]]:
    """New top-level statements of ``p`` with ``values`` written in, and one ``NAME: old ->
    new`` note per changed constant. Values equal to ``p``'s are left alone.

    Returns:
        ``(statements by body index, notes)``, for :func:`operators.base.replace_statements`.
    """
    current = read_point(p, space, block)
    body = p.module.body
    numbers: dict[int, dict[int, cst.CSTNode]] = {}
    stmts: dict[int, cst.CSTNode] = {}
    notes: list[str] = []
    for site in module_sites(p, block, {}):
        new = values.get(site.name)
        if new is None or site.name not in space or new == current.get(site.name):
            continue
        if not space[site.name].numeric:  # a number with declared alternatives: written below
            continue
        numbers.setdefault(site.unit_index, {})[id(site.expr)] = number_expr(new, site.text)
        notes.append(f"{site.name}: {current[site.name]!r} -> {new!r}")
    consts = assignments(p, block)
    for name, param in space.items():
        if param.numeric or name not in values or name not in current:
            continue
        new, old = values[name], current[name]
        if new == old:
            continue
        a = consts[name]
        if param.kind == "flag":
            stmts[a.unit.index] = a.with_value(cst.Name("True" if new else "False"))
            notes.append(f"{name}: {old} -> {new}")
        else:
            stmts[a.unit.index] = a.with_value(new_value(a.value, str(new), param.strings))
            shown = (repr(old), repr(new)) if param.strings else (old, new)
            notes.append(f"{name}: {shown[0]} -> {shown[1]}")
    for index, replacements in numbers.items():
        stmts[index] = body[index].visit(ReplaceNodes(replacements))
    return stmts, notes
