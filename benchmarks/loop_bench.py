"""Search-loop benchmark: slot utilisation and engine overhead per child.

1. Utilisation: 2 slots, children whose evaluation sleeps 1 s (tests/fixtures/noisy_quadratic
   with BOWL_SLEEP=1), 100 evaluations. Utilisation = busy slot-seconds (each run's wall time
   as the evaluator measured it) / (slots x the loop's wall time). Goal >= 98%.
2. Engine overhead per child with 1k and 10k programs already in the archive: the CPU time of
   the loop's own thread (proposing, deduplicating, journaling, telling the archive, the noise
   gate, checkpoints) per evaluation, measured with time.thread_time(); the evaluations
   themselves run in other threads and processes.

Run: PYTHONPATH=. python benchmarks/loop_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evo  # noqa: E402
from archive import Program, RunStore, SeedRun  # noqa: E402
from benchmarks._report import table, update_section  # noqa: E402
from evo.niches import region_labels  # noqa: E402

TARGET = ROOT / "tests" / "fixtures" / "noisy_quadratic"


def quadratic_config(run_dir: Path, evaluations: int, workers: int) -> dict:
    """A search of the noisy-quadratic fixture (evaluations sleep for $BOWL_SLEEP)."""
    cfg = evo.load_config(
        None,
        {
            "run.target": str(TARGET),
            "run.run_dir": str(run_dir),
            "run.evaluations": evaluations,
            "backend.workers": workers,
        },
    )
    cfg["run"]["pass_env"] = ["BOWL_SLEEP"]
    return cfg


def utilisation(tmp: Path, evaluations: int, sleep: float) -> dict:
    os.environ["BOWL_SLEEP"] = str(sleep)
    run_dir = tmp / "util"
    search = evo.Search(quadratic_config(run_dir, evaluations, 2), progress=False)
    t0 = time.monotonic()
    search.run()
    total = time.monotonic() - t0
    wall = search.loop_seconds[1]  # from the loop's start to its last result
    store = RunStore.read(run_dir)
    busy = sum(r.wall_time for p in store.programs.values() for r in p.runs)
    runs = sum(len(p.runs) for p in store.programs.values())
    return {
        "runs": runs,
        "wall": wall,
        "busy": busy,
        "util": busy / (2 * wall),
        "startup": total - wall,
    }


def _populate(run_dir: Path, n: int, rng: np.random.Generator) -> None:
    """A run dir holding the seed plus ``n`` evaluated programs spread over the niches."""
    evo.Search(quadratic_config(run_dir, 3, 2), progress=False).run()  # the seed's baseline
    seed_src = (TARGET / "bowl.py").read_text()
    labels = region_labels(seed_src)
    with RunStore.open(run_dir, writer=True) as store:
        seed_id = store.meta["seed_id"]
        batch = []
        for i in range(n):
            f = float(rng.uniform(14.0, 40.0))  # worse than the seed: they stay in the archive
            batch.append(
                Program(
                    id=f"{i:064x}",
                    source=seed_src + f"\nPADDING_{i} = {i}\n",
                    fidelity="default",
                    parents=(seed_id,),
                    operator="constants",
                    description=f"synthetic {i}",
                    birth=store.next_birth(),
                    status="ok",
                    runs=[SeedRun(seed=0, status="ok", metrics={"loss": f}, wall_time=0.05)],
                    fitness=f,
                    fitness_std=0.1,
                    descriptors={
                        "region": str(rng.choice(labels)),
                        "edit_size_bin": int(rng.integers(1, 8)),
                    },
                )
            )
            if len(batch) == 500:
                store.add_many(batch)
                batch = []
        if batch:
            store.add_many(batch)
        store.checkpoint()


def overhead(tmp: Path, n: int, children: int) -> dict:
    os.environ["BOWL_SLEEP"] = "0"
    run_dir = tmp / f"over{n}"
    _populate(run_dir, n, np.random.default_rng(n))
    done = sum(len(p.runs) for p in RunStore.read(run_dir).programs.values())
    search = evo.Search(quadratic_config(run_dir, done + children, 2), progress=False)
    t0 = time.thread_time()
    w0 = time.monotonic()
    search.run()
    cpu = time.thread_time() - t0
    wall = time.monotonic() - w0
    return {
        "programs": n,
        "children": children,
        "cpu_ms": 1000 * cpu / children,
        "wall_ms": 1000 * wall / children,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller runs, no BENCHMARKS.md update")
    args = ap.parse_args()
    evals = 20 if args.quick else 100
    children = 30 if args.quick else 100
    sizes = (1000,) if args.quick else (1000, 10000)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        u = utilisation(tmp, evals, 1.0)
        rows = [overhead(tmp, n, children) for n in sizes]
    util_table = table(
        [
            "slots",
            "evaluation",
            "runs",
            "loop wall (s)",
            "busy slot-s",
            "utilisation",
            "one-time start and close (s)",
        ],
        [
            [
                2,
                "sleep 1 s",
                u["runs"],
                f"{u['wall']:.1f}",
                f"{u['busy']:.1f}",
                f"{100 * u['util']:.1f}%",
                f"{u['startup']:.1f}",
            ]
        ],
    )
    over_table = table(
        [
            "programs in archive",
            "children",
            "loop-thread CPU per child (ms)",
            "wall per child (ms, 2 slots, ~60 ms evaluations)",
        ],
        [[r["programs"], r["children"], f"{r['cpu_ms']:.1f}", f"{r['wall_ms']:.1f}"] for r in rows],
    )
    body = (
        "Slot utilisation (goal >= 98%): busy slot-seconds (each run's wall time as the "
        "evaluator measured it) / (slots x the loop's wall time, from its start to its last "
        "result, the seed's 3-seed baseline included: children of the seed start as soon as "
        "its runs are dispatched). The one-time start (importing pyribs pulls in torch and scikit-learn, "
        "opening the store) and close (final checkpoint) are shown apart.\n\n"
        + util_table
        + "\n\nEngine overhead: CPU time of the loop's own thread per evaluation (proposal, "
        "validation, dedup, journal fsync, archive, noise gate, checkpoint), with the "
        "archive already holding that many programs.\n\n" + over_table
    )
    print(body)
    if not args.quick:
        update_section(
            "loop",
            "Search loop (benchmarks/loop_bench.py)",
            body,
            "PYTHONPATH=. python benchmarks/loop_bench.py",
        )


if __name__ == "__main__":
    main()
