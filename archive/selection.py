"""Parent selection: which elites the next children are made from.

``mixed`` (the run's default) balances exploitation and exploration, as OpenEvolve's
exploitation/exploration ratios do, and lets the balance follow the search. Every elite is
weighted by its *curiosity* (Cully & Demiris 2018, "Quality and Diversity Optimization: A
Unifying Modular Framework"): the Laplace estimate ``(1 + added) / (2 + children)`` of the rate
at which its children enter the archive (a new elite starts at 1/2). The best elite's weight is
multiplied so that, at equal curiosity, it is the first parent a share ``exploit`` of the time
(what greedy keep/discard would pick; never less than any other elite); the rest go to the
niches. So while the best keeps improving, the search exploits it; once its children stop
entering the archive (a local optimum), its share falls and the niches that are still climbing
get the parents, without any elite ever being starved. A second parent (crossover) is drawn by
curiosity from the other elites, so a crossover never pairs the best with itself while another
elite exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from archive.program import Program

STRATEGIES = ("mixed", "uniform", "weighted", "greedy")
EXPLOIT = 0.5
"""Default share of first parents that ``mixed`` takes from the best elite."""
WEIGHTED_SHARPNESS = 10.0
"""Slope of the sigmoid over rank-normalised fitness: the best elite is weighted ~e^10 times
the worst before the offspring penalty (ShinkaEvolve uses a sigmoid around the median)."""


def _ranked(elites: Sequence[Program], direction: str) -> list[int]:
    """Indices of ``elites`` from worst to best; ties are broken by id, so the order does not
    depend on the order of the list."""
    sign = -1.0 if direction == "maximize" else 1.0
    best_first = sorted(
        range(len(elites)),  # equal fitness: the smaller id ranks higher
        key=lambda i: (sign * float(elites[i].fitness), elites[i].id),
    )  # type: ignore[arg-type]
    return best_first[::-1]


def weights(
    elites: Sequence[Program], offspring_counts: Mapping[str, int], direction: str = "minimize"
) -> np.ndarray:
    """Selection probabilities of the ``weighted`` strategy, in the order of ``elites``.

    ``w_i = sigmoid(s * (r_i - 0.5)) / (1 + n_i)``, where ``r_i`` is the elite's fitness rank
    normalised to [0, 1] (1 = best), ``s`` is :data:`WEIGHTED_SHARPNESS` and ``n_i`` is how
    many children it already has: good parents are favoured, but a parent that has been
    used often gives way to less explored ones.
    """
    n = len(elites)
    rank = np.empty(n)
    rank[_ranked(elites, direction)] = np.arange(n) / max(n - 1, 1)
    fitness_term = 1.0 / (1.0 + np.exp(-WEIGHTED_SHARPNESS * (rank - 0.5)))
    children = np.array([offspring_counts.get(p.id, 0) for p in elites], dtype=np.float64)
    w = fitness_term / (1.0 + children)
    return w / w.sum()


def curiosity(
    elites: Sequence[Program], offspring_counts: Mapping[str, int], added: Mapping[str, int]
) -> np.ndarray:
    """Curiosity weights, in the order of ``elites``: each elite's ``(1 + added) / (2 +
    children)``, normalised (see the module docstring)."""
    w = np.array(
        [(1.0 + added.get(p.id, 0)) / (2.0 + offspring_counts.get(p.id, 0)) for p in elites]
    )
    return w / w.sum()


def select_parents(
    strategy: str,
    elites: Sequence[Program],
    k: int,
    rng: np.random.Generator,
    offspring_counts: Mapping[str, int] | None = None,
    *,
    direction: str = "minimize",
    exploit: float = EXPLOIT,
    added: Mapping[str, int] | None = None,
) -> list[Program]:
    """Pick ``k`` parents (with replacement, except ``mixed``'s later parents) from ``elites``.

    Args:
        strategy: ``mixed`` (a share ``exploit`` of first parents is the best elite, the
            others uniform; see the module docstring), ``uniform`` (MAP-Elites: every elite
            equally likely), ``weighted`` (fitness rank with an offspring-count penalty, see
            :func:`weights`) or ``greedy`` (always the best elite: autoresearch's
            keep/discard baseline).
        elites: the candidate parents; all must be ``ok``.
        k: how many parents to return (>= 1).
        rng: the random generator; the same seed and inputs give the same parents.
        offspring_counts: children per program id so far (``RunStore.offspring_counts()``).
        added: children per program id that entered the archive (``mixed``'s curiosity).
        direction: ``minimize`` or ``maximize`` fitness.
        exploit: ``mixed``'s share of first parents taken from the best elite while every
            elite is equally curious, in [0, 1] (below ``1 / len(elites)`` it has no effect).

    Raises:
        ValueError: unknown strategy or direction, no elites, ``k < 1`` or ``exploit``
            outside [0, 1].

    Example:
        >>> ps = [Program(id=i, source="", fidelity="f", status="ok", fitness=f)
        ...       for i, f in (("a", 2.0), ("b", 1.0))]
        >>> [p.id for p in select_parents("greedy", ps, 2, np.random.default_rng(0))]
        ['b', 'b']
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown selection strategy {strategy!r}; choose one of {list(STRATEGIES)}"
        )
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    if not elites:
        raise ValueError("no elites to select parents from; add an ok program first")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not 0.0 <= exploit <= 1.0:
        raise ValueError(f"exploit must be in [0, 1], got {exploit}")
    if strategy == "greedy":
        return [elites[_ranked(elites, direction)[-1]]] * k
    if strategy == "mixed":
        n = len(elites)
        w = curiosity(elites, offspring_counts or {}, added or {})
        best = _ranked(elites, direction)[-1]
        if n == 1 or exploit >= 1.0:
            first = best
        else:
            p = w.copy()
            p[best] *= max(1.0, exploit * (n - 1) / (1.0 - exploit))  # `exploit` at equal w
            first = int(rng.choice(n, p=p / p.sum()))  # curiosity is > 0 for every elite
        others = [i for i in range(n) if i != first] or [first]
        wo = w[others] / w[others].sum()
        rest = rng.choice(len(others), size=k - 1, replace=k - 1 > len(others), p=wo)
        return [elites[first]] + [elites[others[int(i)]] for i in rest]
    if strategy == "uniform":
        picks = rng.integers(0, len(elites), size=k)
    else:
        picks = rng.choice(
            len(elites), size=k, p=weights(elites, offspring_counts or {}, direction)
        )
    return [elites[int(i)] for i in picks]
