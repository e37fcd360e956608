"""``constants``: perturb numeric literals, mostly in the module-level constant block.

Four proposals in five edit the constant block (where the configuration lives in scripts of
the nanoGPT shape); one in five edits a float literal elsewhere (an init std, an eps, an EMA
beta inside the code). One literal changes, or two with probability 1/4. A constant that
``[ranges]`` holds fixed (``NAME = [v, v]``) is never picked. How each number moves
is in :mod:`operators.perturb`, scaled by ``context.step_scale`` (the run adapts it: larger
while these steps keep improving on their parents, smaller when they stop). Only the literal's
node is replaced; every other byte of the parent is kept.

Description: ``NAME: old -> new`` per edit, joined by ``; `` (``NAME[i]`` for a tuple element,
``unit@Lline hint`` for a literal elsewhere), e.g. ``LEARNING_RATE: 0.003 -> 0.0047``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archive.program import Program
from operators.base import Child, Context, Operator, parent_parsed, replace_statements
from operators.descriptors import regions
from operators.errors import NoChild
from operators.mutate_choice import choice_specs
from operators.perturb import perturb
from operators.sites import ReplaceNodes, elsewhere_sites, module_sites, number_expr, resolve

ELSEWHERE_P = 0.2
TWO_EDITS_P = 0.25
NICHE_WEIGHT = 4.0
"""How much more likely a site in the niche's region is picked."""


class MutateConstants(Operator):
    """Perturb one or two numeric literals of the parent (see the module docstring)."""

    name = "constants"
    arity = 1

    def propose(
        self, parents: Sequence[Program], context: Context, rng: np.random.Generator
    ) -> Child:
        self._check_arity(parents)
        p = parent_parsed(parents[0])
        labels = regions(context.seed_source)
        chosen = choice_specs(context)  # numbers with declared alternatives: `choice`'s job
        fixed = {k for k, (lo, hi) in context.ranges.items() if lo == hi}  # [ranges] N = [v, v]
        top = [
            s
            for s in module_sites(p, context.block, labels)
            if s.base not in chosen and s.base not in fixed
        ]
        deep = elsewhere_sites(p, context.block, labels)
        if not top and not deep:
            raise NoChild("constants: the parent has no numeric literal to perturb")
        pool = deep if (not top or (deep and rng.random() < ELSEWHERE_P)) else top
        n = 2 if len(pool) >= 2 and rng.random() < TWO_EDITS_P else 1
        weights = np.ones(len(pool))
        aim = (context.niche or {}).get("region")
        if aim is not None:
            weights[[s.region == aim for s in pool]] = NICHE_WEIGHT
        picked = rng.choice(len(pool), size=n, replace=False, p=weights / weights.sum())

        replacements: dict[int, dict[int, object]] = {}
        notes = []
        for i in sorted(int(k) for k in picked):
            site = resolve(p, pool[i])
            if site is None:
                continue
            new = perturb(
                site.value, site.name, rng, context.ranges.get(site.base), context.step_scale
            )
            if new is None:
                continue
            replacements.setdefault(site.unit_index, {})[id(site.expr)] = number_expr(
                new, site.text
            )
            notes.append(f"{site.label}: {site.value!r} -> {new!r}")
        if not notes:
            raise NoChild(
                "constants: no allowed value differs from the current one (bounds too tight?)"
            )
        body = p.module.body
        new_stmts = {u: body[u].visit(ReplaceNodes(r)) for u, r in replacements.items()}
        source = replace_statements(p, new_stmts)
        return self._finish(source, parents, context, "; ".join(notes))
