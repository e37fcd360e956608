"""The noise estimate: pooled over re-measured programs, deterministic only when runs repeat."""

from __future__ import annotations

import math
import statistics

import pytest

from archive import Program, SeedRun, estimate_noise, remeasurement_runs
from archive.noise import NoisePool


def prog(pid: str, *values: float, extra: dict | None = None, whys=None) -> Program:
    runs = []
    for i, v in enumerate(values):
        metrics = {"loss": v, **((extra or {}).get(i, {}))}
        why = (whys or [""] * len(values))[i]
        runs.append(SeedRun(seed=i, status="ok", metrics=metrics, why=why))
    return Program(id=pid, source="", fidelity="f", runs=runs)


def test_the_floor_is_the_pooled_standard_deviation():
    a, b = (1.0, 1.2, 0.7), (5.0, 5.5)
    est = estimate_noise([prog("a", *a), prog("b", *b), prog("c", 3.0)], "loss")
    pooled = ((len(a) - 1) * statistics.variance(a) + (len(b) - 1) * statistics.variance(b)) / 3
    assert est.floor == pytest.approx(math.sqrt(pooled))
    assert (est.dof, est.programs) == (3, 2)
    assert est.known and not est.deterministic


def test_identical_runs_are_deterministic_whatever_the_timing():
    timing = {0: {"train_seconds": 1.3, "tokens_per_s": 900.0}, 1: {"train_seconds": 1.9}}
    est = estimate_noise([prog("s", 0.1 + 0.2, 0.1 + 0.2, extra=timing)], "loss")
    assert est.deterministic and est.floor == 0.0 and est.dof == 1
    # three equal draws: zero exactly, although their float mean need not round-trip
    assert estimate_noise([prog("s", 0.1, 0.1, 0.1)], "loss").deterministic


def test_a_varying_metric_other_than_timing_makes_it_noisy():
    """Accuracy on a small set can repeat by chance while the loss moves: not deterministic."""
    extra = {0: {"val_loss": 0.51}, 1: {"val_loss": 0.49}}
    est = estimate_noise([prog("s", 0.9, 0.9, extra=extra)], "loss")
    assert est.floor == 0.0 and est.varies and not est.deterministic


def test_nothing_measured_twice_is_unknown():
    est = estimate_noise([prog("a", 1.0), prog("b", 2.0)], "loss")
    assert not est.known and not est.deterministic and est.floor == 0.0


def test_the_pool_follows_a_program_as_its_runs_arrive():
    pool = NoisePool("loss")
    p = prog("a", 1.0)
    pool.update(p)
    assert not pool.estimate().known
    p.runs.append(SeedRun(seed=1, status="ok", metrics={"loss": 1.0}))
    pool.update(p)
    assert pool.estimate().deterministic
    p.runs.append(SeedRun(seed=2, status="ok", metrics={"loss": 1.6}))
    pool.update(p)
    assert pool.estimate().floor == pytest.approx(statistics.stdev([1.0, 1.0, 1.6]))
    p.runs.append(SeedRun(seed=3, status="crash"))  # failed runs are not measurements
    pool.update(p)
    assert pool.estimate().dof == 2


def test_remeasurement_runs_are_counted_by_reason():
    ps = [
        prog("seed", 1.0, 1.1, 1.2, whys=["", "baseline", "baseline"]),
        prog("c1", 0.5, 0.6, whys=["", "confirm_best"]),
        prog("c2", 0.9, whys=[""]),
        prog("old", 0.7, 0.8, 0.9),  # a run dir from before reasons were recorded
    ]
    assert remeasurement_runs(ps) == {"baseline": 2, "confirm_best": 1, "earlier": 2}
