"""``uniform_crossover``: each differing module-level constant from either parent, at random.

Where the two parents' constants differ, the child (built on parent A) takes parent B's value
with probability 1/2; at least one is taken from B and, when several differ, at least one is
kept from A. Constants that only one parent has are left as parent A has them. A child equal
to parent B is not a new program: :class:`NoChild`.

Description: ``from B: DEPTH=8, MATRIX_LR=0.05 (2 of 3 differing constants)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archive.program import Program
from operators.base import Child, Context, Operator, parent_parsed, replace_statements
from operators.errors import NoChild
from operators.parsed import parsed
from operators.sites import assignments, node_code


class UniformCrossover(Operator):
    """Mix two parents' constants uniformly (see the module docstring)."""

    name = "uniform_crossover"
    arity = 2

    def propose(
        self, parents: Sequence[Program], context: Context, rng: np.random.Generator
    ) -> Child:
        self._check_arity(parents)
        pa, pb = parent_parsed(parents[0]), parent_parsed(parents[1])
        ca, cb = assignments(pa, context.block), assignments(pb, context.block)
        differing = [n for n in ca if n in cb and not ca[n].unit.same(cb[n].unit)]
        if not differing:
            raise NoChild("uniform_crossover: the parents' constants do not differ")
        take = rng.random(len(differing)) < 0.5
        if not take.any():
            take[int(rng.integers(len(differing)))] = True
        if take.all() and len(differing) > 1:
            take[int(rng.integers(len(differing)))] = False
        names = [n for n, t in zip(differing, take, strict=True) if t]
        source = replace_statements(
            pa, {ca[n].unit.index: ca[n].with_value(cb[n].value) for n in names}
        )
        if parsed(source).hash == pb.hash:
            raise NoChild("uniform_crossover: the child equals parent B")
        shown = ", ".join(f"{n}={node_code(cb[n].value)}" for n in names)
        return self._finish(
            source,
            parents,
            context,
            f"from B: {shown} ({len(names)} of {len(differing)} differing constants)",
        )
