"""Noise-aware fitness: aggregate seed runs, and decide when a would-be elite needs more seeds.

A single draw of a noisy metric fools greedy keep/discard (autoresearch's last "win" changed the
random seed). evo learns the evaluator's noise from every program it measures more than once
(:mod:`archive.noise`: the pooled spread is the noise floor), gives every program a standard
error, lets cells compare on a confidence bound, and re-evaluates a candidate whose margin over
the incumbent is within ``gate`` x the noise floor, or that would become the new best.

Measuring costs runs, so the seed is first measured twice: two identical results (every metric
but timing) show a deterministic evaluator, and then no program is ever measured twice and no
win needs confirming. Otherwise the seed gets its ``noise.seeds`` runs and the gate works as
above. Every run after a program's first records why it was made (``SeedRun.why``).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archive import GATED_REASONS as GATED
from archive import NoiseEstimate, NoisePool, Program, estimate_noise
from archive import noise_floor as noise_floor  # re-exported for the loop

FLOOR_CONFIDENCE = 0.99
"""Confidence of the upper bound on the noise floor that a would-be best must clear."""


@dataclass(frozen=True)
class NoisePolicy:
    """How many seeds, and when to ask for more.

    Attributes:
        floor: the noise floor (standard deviation of one evaluation), pooled over every
            program measured more than once.
        gate: margins under ``gate * floor`` trigger re-evaluation; 0 disables the gate.
        max_seeds: the most seeds a candidate gets.
    """

    floor: float
    gate: float
    max_seeds: int

    def within_noise(self, margin: float) -> bool:
        return self.gate > 0 and self.floor > 0 and margin < self.gate * self.floor


def aggregate(program: Program, metric: str, floor: float) -> None:
    """Set status, fitness and fitness_std of ``program`` from its seed runs (in place).

    A program with any failed run takes that run's status. Its fitness is the mean over seeds
    and its fitness_std the standard error, never below ``floor / sqrt(n)``: a program measured
    once is as uncertain as the noise floor says, whatever its lucky draw.
    """
    failed = [r for r in program.runs if r.status != "ok"]
    if failed:
        program.status = failed[-1].status
        program.fitness = None
        program.fitness_std = None
        return
    values = [r.metrics[metric] for r in program.runs if metric in r.metrics]
    if not values or not all(math.isfinite(v) for v in values):
        program.status = "invalid_result" if not values else "nan"
        program.fitness = program.fitness_std = None
        return
    n = len(values)
    spread = statistics.stdev(values) if n >= 2 else 0.0
    program.fitness = statistics.fmean(values)
    program.fitness_std = max(spread, floor) / math.sqrt(n)
    program.status = "ok"
    program.wall_time = sum(r.wall_time for r in program.runs)


def floor_upper_bound(est: NoiseEstimate, confidence: float = FLOOR_CONFIDENCE) -> float:
    """One-sided upper confidence bound of the noise floor: ``s * sqrt(dof / q)`` with ``q``
    the ``1 - confidence`` quantile of the chi-square distribution with ``dof`` degrees of
    freedom (the standard interval for a normal standard deviation); infinite when nothing
    was measured twice. At 99% it is 10 x the estimate with 2 degrees of freedom, 2 x with 10."""
    if not est.known:
        return math.inf
    from scipy.stats import chi2  # scipy comes with pyribs

    return est.floor * math.sqrt(est.dof / float(chi2.ppf(1.0 - confidence, est.dof)))


class NoiseGate:
    """Decides, for each finished seed run, whether a program needs more seeds, and whether
    a re-evaluated candidate's win is real enough to make it an elite.

    - The seed: two runs, then ``noise.seeds`` unless the two were identical (deterministic).
    - A deterministic evaluator: one run per program, nothing confirmed.
    - A noisy one (or one whose noise is still unknown because no program was measured twice,
      as with ``noise.seeds = 1``): a child whose first draw would take a cell from its elite
      by less than ``gate`` x the noise floor, or would beat the best by less than
      ``max(gate, sqrt(2 ln n))`` x :func:`floor_upper_bound` (n finished programs: the
      winner's curse; an unknown floor has no bound), is re-evaluated up to ``max_seeds``
      seeds. It is then admitted only if its margin over each incumbent exceeds
      ``z`` standard errors of the difference (a one-sided test); otherwise it is recorded as
      ``rejected`` with the reason, and counted as a would-be elite the gate rejected.

    Args:
        target: the run's target (metric, direction).
        fidelity: the archive's fidelity.
        seed_id: the seed program, measured first.
        noise_cfg: the ``[noise]`` table.
        describe: fills a program's descriptors (needed to find its cell).
    """

    def __init__(
        self,
        target: Any,
        fidelity: str,
        seed_id: str,
        noise_cfg: dict,
        describe: Callable[[Program], None],
    ):
        self.target, self.fidelity, self.seed_id = target, fidelity, seed_id
        self.cfg, self.describe = noise_cfg, describe
        self.pool = NoisePool(target.metric)
        self.gated: dict[str, str] = {}  # program id -> why it is re-evaluated
        self.remeasured: set[str] = set()  # gated programs with a re-evaluation run done
        self.rejected = 0

    def rebuild(self, store: Any) -> None:
        """Noise pool, gated programs and counts from the store's records (on resume: the
        journal is the truth, whatever instant the last process died)."""
        self.pool = NoisePool(self.target.metric)
        self.gated, self.remeasured, self.rejected = {}, set(), 0
        for p in store.programs.values():
            if p.fidelity == self.fidelity:
                self.observe(p)
                if p.id in self.remeasured:
                    self.gated[p.id] = next(r.why for r in p.runs if r.why in GATED)
                self.rejected += p.status == "rejected"

    @property
    def reevaluated(self) -> int:
        """Would-be elites re-evaluated so far (a run beyond their first is done)."""
        return len(self.remeasured)

    def observe(self, p: Program) -> None:
        """Take a new run of ``p`` into the noise estimate."""
        self.pool.update(p)
        if p.id != self.seed_id and any(r.why in GATED for r in p.runs):
            self.remeasured.add(p.id)

    def estimate(self) -> NoiseEstimate:
        return self.pool.estimate()

    def policy(self, store: Any) -> NoisePolicy:
        return NoisePolicy(
            floor=self.estimate().floor, gate=self.cfg["gate"], max_seeds=self.cfg["max_seeds"]
        )

    def first_baseline_runs(self) -> int:
        """Runs of the seed dispatched before its children may be (the rest, if the evaluator
        proves noisy, follow)."""
        return min(2, max(1, self.cfg["seeds"]))

    def seeds_wanted(self, store: Any, p: Program) -> tuple[int, str] | None:
        """``(runs p should have in all, why the runs after its first are made)``; None while
        the answer waits on the seed's baseline (whether the evaluator is noisy at all)."""
        if p.id == self.seed_id:
            return self._baseline_runs(p), "baseline"
        if p.id in self.gated:
            return max(self.cfg["max_seeds"], 1), self.gated[p.id]
        if not p.runs:
            return 1, ""
        est = self.estimate()
        if est.deterministic:
            return 1, ""
        if not est.known and self._baseline_pending(store):
            return None
        why = self._needs_more(store, p, est)
        if why:
            self.gated[p.id] = why
            return max(self.cfg["max_seeds"], 1), why
        return 1, ""

    def _baseline_runs(self, seed: Program) -> int:
        first = self.first_baseline_runs()
        if len(seed.runs) < first or any(r.status != "ok" for r in seed.runs):
            return first
        if estimate_noise([seed], self.target.metric).deterministic:
            return len(seed.runs)  # identical draws: a deterministic evaluator
        return max(self.cfg["seeds"], first)

    def _baseline_pending(self, store: Any) -> bool:
        seed = store.programs.get((self.seed_id, self.fidelity))
        return seed is not None and seed.status == "pending"

    def finish(self, store: Any, p: Program) -> None:
        """Aggregate ``p``'s runs (in place); a gated win within the noise becomes rejected."""
        aggregate(p, self.target.metric, self.estimate().floor)
        self.describe(p)
        if p.id not in self.gated or p.status != "ok":
            return
        z = self.cfg["z"]
        for margin, inc in self._challenges(store, p):
            se = math.hypot(p.fitness_std or 0.0, inc.fitness_std or 0.0)
            if margin <= z * se:
                p.status = "rejected"
                p.reason = (
                    f"noise gate: beats {inc.id[:12]} by {margin:.4g}, within "
                    f"{z:g} x {se:.4g} (the standard error of the difference) "
                    f"after {len(p.runs)} seeds"
                )
                self.rejected += 1
                return

    def _challenges(self, store: Any, probe: Program) -> list[tuple[float, Program]]:
        """(margin, incumbent) for the cell elite it would replace and the best it would beat,
        on the archive's own comparison (confidence bounds); the margin is the signed gain in
        mean fitness, which a thin lead in score can leave at or below zero."""
        elites = store.elites(self.fidelity)
        sign = -1.0 if self.target.direction == "minimize" else 1.0
        out = []
        verdict = elites.would_add(probe)
        if verdict.status == "improved" and verdict.previous is not None:
            inc = store.programs[(verdict.previous, self.fidelity)]
            out.append((sign * (probe.fitness - inc.fitness), inc))
        best = store.best(self.fidelity)
        if best is not None and best.id != probe.id and elites.score(probe) > elites.score(best):
            out.append((sign * (probe.fitness - best.fitness), best))
        return out

    def _needs_more(self, store: Any, p: Program, est: NoiseEstimate) -> str:
        """Why ``p`` needs more seeds (``confirm_best`` or ``within_noise``), or ""."""
        policy = NoisePolicy(
            floor=est.floor, gate=self.cfg["gate"], max_seeds=self.cfg["max_seeds"]
        )
        if policy.gate <= 0 or len(p.runs) >= policy.max_seeds:
            return ""
        if not p.runs or any(r.status != "ok" for r in p.runs):
            return ""
        probe = dataclasses.replace(p, runs=list(p.runs), descriptors=dict(p.descriptors))
        aggregate(probe, self.target.metric, policy.floor)
        if probe.status != "ok":
            return ""
        self.describe(probe)
        challenges = self._challenges(store, probe)
        best = store.best(self.fidelity)
        # A would-be new best of a noisy evaluator is confirmed unless it wins by more than
        # the luck of the best of n draws: the expected maximum of n standard normals is about
        # sqrt(2 ln n) (the winner's curse), and the new best is the decision users act on.
        # The floor is taken at its upper confidence bound: three draws of the seed can spread
        # little by chance, and the bound says how far too low that can be.
        curse = math.sqrt(2 * math.log(max(len(store.history), 2)))
        bound = max(policy.gate, curse) * floor_upper_bound(est)
        if any(inc is best and margin < bound for margin, inc in challenges):
            return "confirm_best"
        if challenges and policy.within_noise(min(m for m, _ in challenges)):
            return "within_noise"
        return ""
