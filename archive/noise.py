"""The noise of an evaluator, learnt from every program measured more than once.

The **noise floor** is the pooled within-program standard deviation of one evaluation, over
every program with two or more ok runs (the seed's baseline, re-measured candidates):
``s_p = sqrt(sum_i (n_i - 1) s_i^2 / sum_i (n_i - 1))``, the pooled variance of a one-way
layout (e.g. NIST/SEMATECH e-Handbook of Statistical Methods, 7.4.3). Its degrees of freedom
``sum_i (n_i - 1)`` say how well it is known.

An evaluator is **deterministic** when every re-measured program repeated its fitness and every
other metric exactly, timing metrics aside (wall time, throughput and memory vary on any
machine; :data:`TIMING_METRIC` says which names count as timing). A deterministic evaluator
ignores ``EVO_SEED``: measuring a program twice tells nothing, so the run never does.

Example:
    >>> from archive.program import Program, SeedRun
    >>> runs = [SeedRun(seed=i, status="ok", metrics={"loss": 2.0, "sec": i}) for i in range(2)]
    >>> estimate_noise([Program(id="s", source="", fidelity="f", runs=runs)], "loss")
    NoiseEstimate(floor=0.0, dof=1, programs=1, varies=False)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from archive.program import REMEASURE_REASONS, Program

TIMING_METRIC = re.compile(
    r"(time|sec|_s$|_ms$|wall|elapsed|duration|per_s|throughput|speed|mem|rss|_mb$)",
    re.I,
)
"""Metric names that vary from run to run on any machine; they never make an evaluator noisy."""


@dataclass(frozen=True)
class NoiseEstimate:
    """What the re-measured programs say about the evaluator's noise.

    Attributes:
        floor: the pooled standard deviation of one evaluation's fitness (0 when unknown).
        dof: degrees of freedom of ``floor`` (``sum(n_i - 1)``); 0 when nothing was measured
            twice.
        programs: re-measured programs in the pool.
        varies: a metric other than timing differed between two runs of one program.
    """

    floor: float = 0.0
    dof: int = 0
    programs: int = 0
    varies: bool = False

    @property
    def known(self) -> bool:
        """True once some program was measured twice."""
        return self.dof > 0

    @property
    def deterministic(self) -> bool:
        """Every re-measured program repeated every non-timing metric exactly."""
        return self.known and self.floor == 0.0 and not self.varies


class NoisePool:
    """The per-program parts of a :class:`NoiseEstimate`, updated as runs arrive.

    Args:
        metric: the fitness metric.
    """

    def __init__(self, metric: str):
        self.metric = metric
        self._parts: dict[str, tuple[int, float, bool]] = {}  # id -> (dof, sum sq dev, varies)

    def update(self, program: Program) -> None:
        """Take ``program``'s ok runs into the pool (again, after each new run)."""
        runs = [r for r in program.runs if r.status == "ok" and self.metric in r.metrics]
        values = [r.metrics[self.metric] for r in runs]
        if len(values) < 2 or not all(math.isfinite(v) for v in values):
            self._parts.pop(program.id, None)
            return
        if len(set(values)) == 1:
            ss = 0.0  # exactly: a mean of equal floats need not round-trip
        else:
            mean = math.fsum(values) / len(values)
            ss = math.fsum((v - mean) ** 2 for v in values)
        names = {k for r in runs for k in r.metrics if not TIMING_METRIC.search(k)}
        varies = any(len({r.metrics.get(k) for r in runs}) > 1 for k in names)
        self._parts[program.id] = (len(values) - 1, ss, varies or ss > 0)

    def estimate(self) -> NoiseEstimate:
        dof = sum(d for d, _, _ in self._parts.values())
        if not dof:
            return NoiseEstimate()
        ss = math.fsum(s for _, s, _ in self._parts.values())
        return NoiseEstimate(
            floor=math.sqrt(ss / dof),
            dof=dof,
            programs=len(self._parts),
            varies=any(v for _, _, v in self._parts.values()),
        )


def estimate_noise(programs: Iterable[Program], metric: str) -> NoiseEstimate:
    """The :class:`NoiseEstimate` of ``programs`` (give one fidelity's programs)."""
    pool = NoisePool(metric)
    for p in programs:
        pool.update(p)
    return pool.estimate()


def remeasurement_runs(programs: Iterable[Program]) -> dict[str, int]:
    """Runs after each program's first, by reason (:data:`REMEASURE_REASONS`; ``earlier`` for
    runs of a run dir written before reasons were recorded)."""
    out: Counter[str] = Counter()
    for p in programs:
        tagged = [r.why for r in p.runs if r.why]
        if tagged:
            out.update(w if w in REMEASURE_REASONS else "earlier" for w in tagged)
        elif len(p.runs) > 1:
            out["earlier"] += len(p.runs) - 1
    return dict(out)
