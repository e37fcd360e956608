"""What the search learns about its own operators: which to use (a bandit), and how far the
``constants`` operator steps (an adaptive step size).

Both learn only from the archive's history rows (one per finished program), through the same
:meth:`SearchPolicy.observe` live and when a run resumes (:meth:`SearchPolicy.rebuild`), so a
crash at any instant leaves them exactly as the journal says.

**Operator bandit.** Adaptive operator selection by probability matching (Goldberg 1990,
"Probability matching, the magnitude of reinforcement, and classifier system bidding";
Thierens 2005, "An adaptive pursuit strategy for allocating operator probabilities"): with
``K`` operators, operator ``i`` is picked with probability

    ``p_i = floor + (1 - K * floor) * q_i / sum_j q_j``,  ``q_i = pi_i * r_i``

so none ever starves, where ``pi_i`` is its prior share (the ``[operators]`` weights,
normalised) and ``r_i`` its estimated reward per evaluation run, shrunk toward the pooled
rate of all operators (the posterior mean of a beta-binomial model whose prior mean is the
pool's rate, i.e. empirical-Bayes shrinkage as in Efron and Morris 1975, "Data analysis using
Stein's estimator and its generalizations"):

    ``r_i = (R_i + c * m) / (N_i + c)``,  ``m = sum_j R_j / sum_j N_j``

``R_i`` and ``N_i`` are the rewards and runs of its finished children, both discounted by
:data:`DISCOUNT` per finished child of any operator (recent children weigh more: what works
early in a search is not what works late), and ``c`` = :data:`PRIOR_RUNS` pseudo-runs. So
the children's evidence multiplies the weights and never washes them out: an operator that
earns as fast as the pool keeps its weight's share, one that earns twice as fast gets about
twice that, and until some child earns a reward the shares are the weights. (An additive
prior, pseudo-rewards in proportion to the weights, moved the shares toward equal runs
whenever rewards were sparse: without a single reward in 100 children, ``tpe`` fell from its
weight's 52% to ~36%; BENCHMARKS.md, eleventh session.) A child's reward is 1 when it became
the new best, :data:`CELL_REWARD` when it took an empty cell or beat a cell's elite, 0
otherwise, divided by the runs it cost (a re-measured child costs more).

It also keeps the climbing emitter's state (:mod:`evo.emitter`), and counts, per parent, the
finished children and those that entered the archive: ``mixed`` selection's curiosity
(:func:`archive.selection.curiosity`). Children of ``tpe`` (which samples every constant
afresh, whatever its parent holds) say nothing of their parent and are not counted.

**Step size.** The 1/5th success rule (Rechenberg 1973) in the form of Kern et al. 2004
("Learning probability distributions in continuous evolutionary algorithms", sec. 3): a
``constants`` (or ``tpe_local``) child better than its parent multiplies that operator's step
scale (the perturbation's size, the trust region's radius) by ``exp(1/3)``, any other finished
one by ``exp(-1/12)``, so the scale holds steady when one step in five succeeds,
grows while steps keep succeeding and shrinks when they stop; kept in [:data:`MIN_STEP`,
:data:`MAX_STEP`].
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from archive import HistoryRow, Program
from evo.emitter import PATIENCE, ClimbingEmitter

DISCOUNT = 0.98
"""Per finished child: a reward's weight halves after about 35 children."""
PRIOR_RUNS = 4.0
"""How many runs of evidence the pooled rate is worth in each operator's estimate."""
CELL_REWARD = 0.5
"""Reward of a child that took an empty cell or beat a cell's elite (1 for a new best)."""
FLOOR = 0.03
"""Default lowest share of any operator."""
STEP_UP, STEP_DOWN = math.exp(1 / 3), math.exp(-1 / 12)
MIN_STEP, MAX_STEP = 0.25, 2.0
UNPARENTED = ("tpe",)
"""Operators whose children owe nothing to their parent's values."""
STEP_OPERATORS = ("constants", "tpe_local")
"""Operators whose step (``constants``' perturbation, ``tpe_local``'s trust region) adapts."""


class SearchPolicy:
    """Operator shares and the step scales of ``constants`` and ``tpe_local`` (``steps``), learnt
    from the run's children.

    Args:
        priors: operator name -> weight (> 0): the bandit's prior shares.
        fidelity: the level the search runs at; rows of other levels are ignored.
        direction: ``minimize`` or ``maximize``.
        bandit: False keeps the shares at the priors (``[bandit] enabled = false``).
        floor: the lowest share of any operator; ``K * floor`` must stay below 1.
        patience: the climbing emitter's (:mod:`evo.emitter`, ``emitter``).

    Raises:
        ValueError: no operator, a weight <= 0, or a floor that leaves nothing to learn.

    Example:
        >>> pol = SearchPolicy({"constants": 1.0, "tpe": 1.0}, fidelity="f")
        >>> pol.shares()
        {'constants': 0.5, 'tpe': 0.5}
    """

    def __init__(
        self,
        priors: Mapping[str, float],
        *,
        fidelity: str,
        direction: str = "minimize",
        bandit: bool = True,
        floor: float = FLOOR,
        patience: int = PATIENCE,
    ):
        if not priors:
            raise ValueError("SearchPolicy: no operator to choose from")
        if any(not (w > 0 and math.isfinite(w)) for w in priors.values()):
            raise ValueError(f"SearchPolicy: weights must be finite and > 0, got {dict(priors)}")
        if not 0 <= floor * len(priors) < 1:
            raise ValueError(
                f"SearchPolicy: floor {floor} x {len(priors)} operators must be in [0, 1)"
            )
        total = sum(priors.values())
        self.names = list(priors)
        self.prior = {k: w / total for k, w in priors.items()}
        self.fidelity, self.direction = fidelity, direction
        self.bandit, self.floor = bandit, floor
        self.rewards = dict.fromkeys(self.names, 0.0)
        self.runs = dict.fromkeys(self.names, 0.0)
        self.steps = dict.fromkeys(STEP_OPERATORS, 1.0)
        self.children: Counter[str] = Counter()  # parent id -> finished children
        self.added: Counter[str] = Counter()  # parent id -> children that entered the archive
        self._best: float | None = None
        self.emitter = ClimbingEmitter(patience, direction)

    # ---- the bandit ----------------------------------------------------------------------

    def shares(self, among: list[str] | None = None) -> dict[str, float]:
        """Selection probability of each operator (of ``among`` only, renormalised)."""
        names = [n for n in (among if among is not None else self.names) if n in self.prior]
        if not names:
            return {}
        q = {n: self.prior[n] for n in names}
        pooled_runs = sum(self.runs.values())
        if self.bandit and pooled_runs > 0:
            m = sum(self.rewards.values()) / pooled_runs
            rate = {
                n: (self.rewards[n] + PRIOR_RUNS * m) / (self.runs[n] + PRIOR_RUNS) for n in names
            }
            if sum(rate.values()) > 0:  # else no child has earned anything yet: the weights
                q = {n: self.prior[n] * rate[n] for n in names}
        total = sum(q.values())
        floor = self.floor if self.bandit else 0.0
        raw = {n: floor + (1 - len(names) * floor) * q[n] / total for n in names}
        s = sum(raw.values())
        return {n: v / s for n, v in raw.items()}

    def pick(self, rng: np.random.Generator, among: list[str]) -> str:
        """An operator name drawn by :meth:`shares` (of ``among``)."""
        shares = self.shares(among)
        names = list(shares)
        p = np.array([shares[n] for n in names])
        return names[int(rng.choice(len(names), p=p / p.sum()))]

    # ---- learning ------------------------------------------------------------------------

    def observe(self, row: HistoryRow, program: Program, parent: Program | None) -> None:
        """Learn from one finished program: its history row, its record and its first parent's
        record (same fidelity; None when unknown)."""
        if row.fidelity != self.fidelity:
            return
        new_best = row.best is not None and (
            self._best is None or self._better(row.best, self._best)
        )
        if row.best is not None:
            self._best = row.best
        op = program.operator
        if op not in UNPARENTED:
            self.children.update(set(program.parents))
            if row.added in ("new", "improved"):
                self.added.update(set(program.parents))
        self.emitter.observe(program, parent.fitness if parent is not None and parent.ok else None)
        if op not in self.prior:
            return  # the seed, hand-written variants
        reward = 1.0 if new_best and row.id == program.id else 0.0
        if not reward and row.added in ("new", "improved"):
            reward = CELL_REWARD
        runs = max(1, len(program.runs))
        for n in self.names:
            self.rewards[n] *= DISCOUNT
            self.runs[n] *= DISCOUNT
        self.rewards[op] += reward / runs
        self.runs[op] += 1.0
        if op in self.steps:
            better = (
                program.ok
                and parent is not None
                and parent.ok
                and self._better(program.fitness, parent.fitness)  # type: ignore[arg-type]
            )
            scale = self.steps[op] * (STEP_UP if better else STEP_DOWN)
            self.steps[op] = min(MAX_STEP, max(MIN_STEP, scale))

    def rebuild(self, store: Any) -> None:
        """Replay every history row of the store (on resume)."""
        for row in store.history:
            program = store.programs.get((row.id, row.fidelity))
            if program is not None:
                self.observe(row, program, first_parent(store, program))

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b


def first_parent(store: Any, program: Program) -> Program | None:
    """The record of ``program``'s first parent at its fidelity, if the store has one."""
    if not program.parents:
        return None
    return store.programs.get((program.parents[0], program.fidelity))
