"""Noise-aware fitness: aggregate seed runs, and decide when a would-be elite needs more seeds.

A single draw of a noisy metric fools greedy keep/discard (autoresearch's last "win" changed the
random seed). evo measures the noise floor on the seed program (its spread over k seeds), gives
every program a standard error, lets cells compare on a confidence bound, and re-evaluates a
candidate whose margin over the incumbent is within ``gate`` x the noise floor.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archive import Program, noise_floor  # noise_floor: re-exported for the loop


@dataclass(frozen=True)
class NoisePolicy:
    """How many seeds, and when to ask for more.

    Attributes:
        floor: the noise floor (standard deviation of one evaluation), measured on the seed.
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


class NoiseGate:
    """Decides, for each finished seed run, whether a candidate needs more seeds, and whether
    a re-evaluated candidate's win is real enough to make it an elite.

    A child whose first draw would take a cell from its elite, or beat the best, by less than
    ``gate`` x the noise floor is re-evaluated up to ``max_seeds`` seeds. It is then admitted
    only if its margin over each incumbent exceeds ``z`` standard errors of the difference
    (a one-sided test); otherwise it is recorded as ``rejected`` with the reason, and counted
    as a would-be elite the gate rejected.

    Args:
        target: the run's target (metric, direction).
        fidelity: the archive's fidelity.
        seed_id: the seed program, whose spread over seeds is the noise floor.
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
        self.gated: set[str] = set()
        self.reevaluated = 0
        self.rejected = 0

    def policy(self, store: Any) -> NoisePolicy:
        seed = store.programs.get((self.seed_id, self.fidelity))
        floor = noise_floor(seed, self.target.metric) if seed else 0.0
        return NoisePolicy(floor=floor, gate=self.cfg["gate"], max_seeds=self.cfg["max_seeds"])

    def seeds_wanted(self, store: Any, p: Program) -> int:
        if p.id == self.seed_id:
            return self.cfg["seeds"]
        if p.id in self.gated or self._needs_more(store, p):
            return max(self.cfg["max_seeds"], 1)
        return 1

    def finish(self, store: Any, p: Program) -> None:
        """Aggregate ``p``'s runs (in place); a gated win within the noise becomes rejected."""
        floor = (
            noise_floor(p, self.target.metric) if p.id == self.seed_id else self.policy(store).floor
        )
        aggregate(p, self.target.metric, floor)
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

    def _needs_more(self, store: Any, p: Program) -> bool:
        policy = self.policy(store)
        if policy.gate <= 0 or len(p.runs) >= policy.max_seeds or p.id == self.seed_id:
            return False
        if not p.runs or any(r.status != "ok" for r in p.runs):
            return False
        probe = dataclasses.replace(p, runs=list(p.runs), descriptors=dict(p.descriptors))
        aggregate(probe, self.target.metric, policy.floor)
        if probe.status != "ok":
            return False
        self.describe(probe)
        challenges = self._challenges(store, probe)
        best = store.best(self.fidelity)
        # A would-be new best is always confirmed: it is the decision users act on, it is
        # rare, and a lucky draw among many children beats any fixed margin (winner's curse).
        new_best = any(inc is best for _, inc in challenges)
        if new_best or (challenges and policy.within_noise(min(m for m, _ in challenges))):
            if p.id not in self.gated:
                self.gated.add(p.id)
                self.reevaluated += 1
            return True
        return False
