"""The Program record: one program evaluated at one fidelity, with its lineage and results."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FAILED = ("crash", "timeout", "oom", "nan", "invalid_result")
"""The statuses of a program whose evaluation failed (the evaluator's failure classes)."""

STATUSES = ("ok", *FAILED, "duplicate", "rejected")
"""Every status a program can end in; only ``ok`` programs can become elites."""

PENDING = "pending"
"""Status of a program that has been proposed but whose evaluation has not finished."""


REMEASURE_REASONS = ("baseline", "confirm_best", "within_noise")
"""Why a program got a run after its first: the seed's baseline (its spread is the first
measure of the noise), a would-be new best confirmed, or a margin within the noise floor."""
NOT_PLACED = "not placed in the archive"
"""How the reason of an ok program begins when the archive cannot place it (a descriptor
missing or not finite); an ok program put in an edge bin has a reason naming the descriptor
that was "outside its range"."""
GATED_REASONS = REMEASURE_REASONS[1:]
"""Reasons a child (not the seed) is re-evaluated: the noise gate's ``confirm_best`` and
``within_noise``."""


@dataclass
class SeedRun:
    """One evaluation of a program with one random seed.

    ``why`` is empty for a program's first run; a later run names its reason, one of
    :data:`REMEASURE_REASONS`.
    """

    seed: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    wall_time: float = 0.0
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {
            "seed": self.seed,
            "status": self.status,
            "metrics": dict(self.metrics),
            "wall_time": self.wall_time,
        }
        if self.why:
            d["why"] = self.why
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeedRun:
        return cls(
            seed=int(d["seed"]),
            status=str(d["status"]),
            metrics={k: float(v) for k, v in d.get("metrics", {}).items()},
            wall_time=float(d.get("wall_time", 0.0)),
            why=str(d.get("why", "")),
        )


@dataclass
class Program:
    """A program variant and everything known about it.

    ``id`` is the hash of the program's canonical source (computed by ``operators``), so two
    programs that differ only in comments or formatting share an id. A record is keyed by
    ``(id, fidelity)``: the same program evaluated at two fidelities is two records.
    ``lineage`` is set on a child made on the climbing emitter's turn: the id of the elite
    its lineage started from (see :mod:`evo.emitter`); empty otherwise.

    Example:
        >>> p = Program(id="ab12", source="x = 1\\n", operator="seed", fidelity="tiny")
        >>> p.key
        ('ab12', 'tiny')
    """

    id: str
    source: str
    fidelity: str
    parents: tuple[str, ...] = ()
    operator: str = "seed"
    description: str = ""
    idea: str = ""
    birth: int = -1
    status: str = PENDING
    runs: list[SeedRun] = field(default_factory=list)
    fitness: float | None = None
    fitness_std: float | None = None
    descriptors: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0
    cost: float = 0.0
    tokens: int = 0
    reason: str = ""
    stderr_tail: str = ""
    artifacts: dict[str, Any] = field(default_factory=dict)
    lineage: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.id, self.fidelity)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.fitness is not None and math.isfinite(self.fitness)

    def metrics_mean(self) -> dict[str, float]:
        """Mean of every metric over the ok seed runs."""
        sums: dict[str, list[float]] = {}
        for run in self.runs:
            if run.status == "ok":
                for k, v in run.metrics.items():
                    sums.setdefault(k, []).append(v)
        return {k: sum(v) / len(v) for k, v in sums.items()}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["parents"] = list(self.parents)
        d["runs"] = [r.to_dict() for r in self.runs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Program:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["parents"] = tuple(kw.get("parents", ()))
        kw["runs"] = [SeedRun.from_dict(r) for r in kw.get("runs", [])]
        return cls(**kw)


def noise_floor(program: Program, metric: str) -> float:
    """Standard deviation of one evaluation, from ``program``'s ok runs (0 with one run); of
    the seed program, this is the run's noise floor."""
    values = [r.metrics[metric] for r in program.runs if r.status == "ok" and metric in r.metrics]
    return statistics.stdev(values) if len(values) >= 2 else 0.0


def failure_reasons(programs: Iterable[Program], top: int = 10) -> list[tuple[str, str, int]]:
    """``(status, reason, programs)`` over the failed programs, most common first, ``top``
    rows: what ``evo status`` and the report show, evaluator-reported errors among them."""
    counts = Counter((p.status, p.reason) for p in programs if p.status in FAILED)
    return [(status, why, n) for (status, why), n in counts.most_common(top)]


def placement_notes(programs: Iterable[Program]) -> dict[str, tuple[int, str]]:
    """``{"not placed": (count, example reason), "outside range": (...)}`` over the ok
    programs whose descriptors the archive could not use as given (empty when none)."""
    out: dict[str, tuple[int, str]] = {}
    for p in programs:
        if p.status != "ok" or not p.reason:
            continue
        kind = "not placed" if p.reason.startswith(NOT_PLACED) else "outside range"
        n, example = out.get(kind, (0, p.reason))
        out[kind] = (n + 1, example)
    return out
