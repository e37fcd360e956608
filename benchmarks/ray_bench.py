"""Ray backend benchmark: throughput with 1 and 2 workers, and scheduling overhead per child.

1. Throughput: a whole search (evo.Search) on tests/fixtures/noisy_quadratic whose evaluations
   sleep 1 s (BOWL_SLEEP=1), on a RayBackend with 1 and then 2 workers; evaluations per second
   of the search's wall time (seed baseline, dispatch and final checkpoint included). The local
   backend with 2 slots runs the same search for reference. Goal: 2 Ray workers >= 1.8x one.
2. Overhead per child: no-op evaluations (BOWL_SLEEP=0, ~40 ms of Python start-up) submitted one
   at a time to each backend; overhead = the submitter's wall time per child minus the
   evaluation's own wall time as the evaluator measured it (working dir, environment, start,
   supervision and classification are in both; Ray adds serialisation, scheduling and the
   result's trip back).

The Ray instance is started, and one search and the workers warmed up, before anything is timed.

Run: PYTHONPATH=. python benchmarks/ray_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evo  # noqa: E402
from benchmarks._report import table, update_section  # noqa: E402
from benchmarks.loop_bench import TARGET, quadratic_config  # noqa: E402
from evo.evaluation.evaluator import EvalCall  # noqa: E402
from evo.evaluation.ray_backend import RayBackend  # noqa: E402
from evo.evaluation.slots import LocalBackend, make_slots  # noqa: E402
from evo.target import load_target  # noqa: E402


def _warm_up(backend: Any, tmp: Path, n: int) -> None:
    """Run ``n`` evaluations at once so every worker has imported evo before timing."""
    target = load_target(TARGET)
    # Each sleeps long enough that Ray cannot serve them all from one worker.
    calls = [
        EvalCall(
            target,
            target.seed_source(),
            tmp / f"warm-{time.monotonic_ns()}-{i}",
            extra_env={"BOWL_SLEEP": "0.5"},
        )
        for i in range(n)
    ]
    cf.wait([backend.submit(c) for c in calls])


def throughput(tmp: Path, backend: Any, name: str, evaluations: int, warm: Any) -> dict:
    # Ray reaps workers idle beyond its CPU count; a search that starts on a reaped one pays
    # its start-up (~1 s here) once: a one-off, not throughput, so every search starts warm.
    _warm_up(warm, tmp, 2)
    os.environ["BOWL_SLEEP"] = "1"
    search = evo.Search(
        quadratic_config(tmp / name, evaluations, len(backend.slots)),
        backend=backend,
        progress=False,
    )
    t0 = time.monotonic()
    summary = search.run()
    wall = time.monotonic() - t0
    return {
        "name": name,
        "workers": len(backend.slots),
        "runs": summary.evaluations,
        "wall": wall,
        "rate": summary.evaluations / wall,
    }


def overhead(tmp: Path, backend: Any, name: str, children: int) -> dict:
    target = load_target(TARGET)
    extra = {"BOWL_SLEEP": "0"}
    per_child = []
    for i in range(children):
        call = EvalCall(target, target.seed_source(), tmp / f"{name}-noop-{i}", extra_env=extra)
        t0 = time.monotonic()
        result = backend.submit(call).result()
        per_child.append(time.monotonic() - t0 - result.wall_time)
        assert result.ok, result.reason
    per_child.sort()
    return {
        "name": name,
        "children": children,
        "mean": statistics.fmean(per_child) * 1000,
        "median": statistics.median(per_child) * 1000,
        "p90": per_child[int(0.9 * (len(per_child) - 1))] * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller runs, no BENCHMARKS.md update")
    args = ap.parse_args()
    evaluations = 8 if args.quick else 20
    children = 10 if args.quick else 40
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.monotonic()
        ray2 = RayBackend(workers=2)
        start = time.monotonic() - t0
        _warm_up(ray2, tmp, 2)
        ray1 = RayBackend(workers=1)  # shares the instance; one evaluation at a time
        local = LocalBackend(make_slots(2, gpus=[]))
        # The first search in a process pays one-off imports (torch for environment.json...).
        os.environ["BOWL_SLEEP"] = "0"
        evo.Search(quadratic_config(tmp / "warm", 3, 2), backend=local, progress=False).run()
        rates = [
            throughput(tmp, b, name, evaluations, ray2)
            for b, name in ((ray1, "ray-1"), (ray2, "ray-2"), (local, "local-2"))
        ]
        costs = [overhead(tmp, local, "local", children), overhead(tmp, ray1, "ray", children)]
        local.shutdown()
        ray1.shutdown()
        ray2.shutdown()
    base = rates[0]["rate"]
    rate_table = table(
        ["backend", "workers", "evaluations", "wall (s)", "evaluations/s", "vs 1 Ray worker"],
        [
            [
                r["name"].split("-")[0],
                r["workers"],
                r["runs"],
                f"{r['wall']:.1f}",
                f"{r['rate']:.3f}",
                f"{r['rate'] / base:.2f}x",
            ]
            for r in rates
        ],
    )
    cost_table = table(
        ["backend", "children", "mean (ms)", "median (ms)", "p90 (ms)"],
        [
            [c["name"], c["children"], f"{c['mean']:.1f}", f"{c['median']:.1f}", f"{c['p90']:.1f}"]
            for c in costs
        ],
    )
    body = (
        f"Throughput on 1-second evaluations (goal: 2 Ray workers >= 1.8x one): a whole "
        f"search of {evaluations} evaluations each, wall time from start to final "
        f"checkpoint (the seed's baseline included). Starting the local Ray instance took "
        f"{start:.1f} s (not counted).\n\n"
        + rate_table
        + "\n\nScheduling overhead per child: no-op evaluations submitted one at a time; "
        "the submitter's wall time per child minus the evaluation's own wall time (both "
        "include the evaluator's working dir, environment and classification; Ray adds "
        "serialisation, scheduling and the result's return).\n\n" + cost_table
    )
    print(body)
    if not args.quick:
        update_section(
            "ray",
            "Ray backend (benchmarks/ray_bench.py)",
            body,
            "PYTHONPATH=. python benchmarks/ray_bench.py",
        )


if __name__ == "__main__":
    main()
