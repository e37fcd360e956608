"""Build the structural operators for a run, and check the seed and config when it starts.

Operator names (the keys of ``[operators] weights``): ``constants``, ``tpe``, ``tpe_local``,
``choice``, ``toggle``, ``uniform_crossover``, ``merge``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import libcst as cst

from operators.base import Context, Operator
from operators.descriptors import regions
from operators.errors import OperatorConfigError, ValidationError
from operators.merge import ThreeWayMerge
from operators.mutate_choice import MutateChoice, choice_specs
from operators.mutate_constants import MutateConstants
from operators.parsed import parsed
from operators.sites import Assignment, assignments, elsewhere_sites, module_sites, number_of
from operators.space import infer_space
from operators.statements import block_spans, units
from operators.toggle_flag import ToggleFlag, bool_flags
from operators.tpe import LocalSampleConstants, SampleConstants
from operators.uniform_crossover import UniformCrossover

OPERATORS: dict[str, type[Operator]] = {
    "constants": MutateConstants,
    "tpe": SampleConstants,
    "tpe_local": LocalSampleConstants,
    "choice": MutateChoice,
    "toggle": ToggleFlag,
    "uniform_crossover": UniformCrossover,
    "merge": ThreeWayMerge,
}


def check_context(context: Context) -> None:
    """Check the seed, ranges, choices and droppable names once, when a run starts.

    Raises:
        OperatorConfigError: one line naming the key (``ranges.LR``, ``choices.ACT``, ...)
            or ``seed`` and what to do.
    """
    seed = parsed(context.seed_source)
    try:
        seed.module  # noqa: B018
    except ValidationError as e:
        raise OperatorConfigError(
            f"seed: the parser cannot handle it ({e}); fix the seed"
        ) from None
    try:
        spans = block_spans(seed) if context.block else []
    except ValidationError as e:
        raise OperatorConfigError(f"seed: {e}") from None
    if context.block and not spans:
        raise OperatorConfigError(
            "seed: the target is a block target but the seed has no "
            "EVOLVE-BLOCK-START/EVOLVE-BLOCK-END comment lines; add them"
        )
    consts = assignments(seed, context.block)
    both = sorted(set(context.ranges) & set(context.choices))
    if both:
        raise OperatorConfigError(
            f"ranges.{both[0]}: {both[0]} also has [choices]; a constant is searched over a "
            "range or among alternatives, not both: keep one"
        )
    for name, bounds in context.ranges.items():
        lo, hi = bounds
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise OperatorConfigError(f"ranges.{name}: bounds must be finite, got {[lo, hi]}")
        if lo > hi:
            raise OperatorConfigError(f"ranges.{name}: low > high ({lo} > {hi}); swap them")
        if name not in consts or not _numeric(consts[name]):
            raise OperatorConfigError(
                f"ranges.{name}: the seed has no numeric module-level "
                f"constant {name}; fix the name or remove the range"
            )
        outside = [v for v in _numbers(consts[name]) if not lo <= v <= hi]
        if outside:  # the bounds are hard: a seed outside them would not be in the space
            raise OperatorConfigError(
                f"ranges.{name}: the seed's value {outside[0]!r} lies outside "
                f"[{lo}, {hi}]; widen the range or change the seed"
            )
    specs = choice_specs(context)
    keys = {u.key for u in units(seed)}
    for key in context.droppable:
        if key not in keys:
            raise OperatorConfigError(
                f"droppable: the seed has no top-level statement {key!r}; "
                "use a def, class or assigned name"
            )
    labels = regions(context.seed_source)
    mutable = (
        module_sites(seed, context.block, labels)
        or specs
        or bool_flags(seed, context.block)
        or context.droppable
        or elsewhere_sites(seed, context.block, labels)
    )
    if not mutable:
        raise OperatorConfigError(
            "seed: it has nothing the structural operators can change: "
            "add module-level constants or [choices]"
        )


def _numbers(a: Assignment) -> list[float]:
    """The numbers a constant holds (each element of a tuple or list)."""
    v = number_of(a.value)
    if v is not None:
        return [v[0]]
    if isinstance(a.value, (cst.Tuple, cst.List)):
        return [x[0] for x in (number_of(e.value) for e in a.value.elements) if x is not None]
    return []


def _numeric(a: Assignment) -> bool:
    if number_of(a.value) is not None:
        return True
    return isinstance(a.value, (cst.Tuple, cst.List)) and any(
        number_of(e.value) is not None for e in a.value.elements
    )


def build_operators(
    names_or_weights: Mapping[str, float] | Sequence[str], context: Context
) -> list[tuple[Operator, float]]:
    """The structural operators with their weights, after :func:`check_context`.

    Operators with weight 0, and mutations with nothing to act on in this seed (``choice``
    without declared choices, ``toggle`` without flags or droppable statements, ``tpe``
    without module-level constants, ``tpe_local`` without numeric ones) are left out.

    Args:
        names_or_weights: ``{name: weight}``, or a list of names (weight 1 each).
        context: the run's context.

    Raises:
        OperatorConfigError: an unknown name, a negative or non-finite weight, no operator
            left, or any error of :func:`check_context`.

    Example:
        >>> ctx = Context(seed_source="LR = 0.1\\n")
        >>> [(op.name, w) for op, w in build_operators({"constants": 2.0, "merge": 1.0}, ctx)]
        [('constants', 2.0), ('merge', 1.0)]
    """
    weights = (
        dict(names_or_weights)
        if isinstance(names_or_weights, Mapping)
        else {n: 1.0 for n in names_or_weights}
    )
    for name, w in weights.items():
        if name not in OPERATORS:
            raise OperatorConfigError(
                f"operators.weights.{name}: unknown operator; known: {sorted(OPERATORS)}"
            )
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
            raise OperatorConfigError(f"operators.weights.{name}: must be a number >= 0, got {w!r}")
    check_context(context)
    seed = parsed(context.seed_source)
    space = infer_space(context.seed_source, context.ranges, context.choices, context.block)
    usable = {
        "choice": bool(choice_specs(context)),
        "toggle": bool(bool_flags(seed, context.block) or context.droppable),
        "tpe": bool(space),
        "tpe_local": any(param.numeric for param in space.values()),
    }
    out = [
        (OPERATORS[name](), float(w))
        for name, w in weights.items()
        if w > 0 and usable.get(name, True)
    ]
    if not out:
        raise OperatorConfigError(
            "operators.weights: no operator is left with a weight > 0 "
            "that can act on this seed; give 'constants' a weight"
        )
    return out
