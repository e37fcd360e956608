"""Noise-aware fitness: aggregate seed runs, and decide when a would-be elite needs more seeds.

A single draw of a noisy metric fools greedy keep/discard (autoresearch's last "win" changed the
random seed). evo measures the noise floor on the seed program (its spread over k seeds), gives
every program a standard error, lets cells compare on a confidence bound, and re-evaluates a
candidate whose margin over the incumbent is within ``gate`` x the noise floor.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from archive import Program


@dataclass(frozen=True)
class NoisePolicy:
    """How many seeds, and when to ask for more.

    Attributes:
        floor: the noise floor (standard deviation of one evaluation), measured on the seed.
        gate: margins under ``gate * floor`` trigger re-evaluation; 0 disables the gate.
        max_seeds: the most seeds a candidate gets.
        z: confidence multiplier stored in the archive; ``fitness_std`` is a standard error.
    """

    floor: float
    gate: float
    max_seeds: int
    z: float

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


def noise_floor(program: Program, metric: str) -> float:
    """Standard deviation of one evaluation, from the seed program's runs (0 with one run)."""
    values = [r.metrics[metric] for r in program.runs if r.status == "ok" and metric in r.metrics]
    return statistics.stdev(values) if len(values) >= 2 else 0.0
