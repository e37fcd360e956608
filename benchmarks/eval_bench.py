"""Evaluation start-up overhead, and tinygpt ``tiny`` on CPU through the evaluator.

Rows: spawn to the first line of a trivial Python child; spawn to ``import torch`` done; a
no-op child (it only writes its result) under a bare ``subprocess.run``, the floor, and as the
full ``run_job`` round trip (fresh dir, env, supervision, cleanup sweep, result parsing),
without and with a memory limit (which polls the process tree 5x more often), and inside the
bubblewrap sandbox when it works here; the sandbox's start-up cost is the median of paired
differences (bare and sandboxed runs alternate, so both see the same machine); and, when
``targets/tinygpt`` loads, one ``evaluate_program`` of its seed at ``tiny`` on a one-thread CPU
slot (in the sandbox when it works): spawn to the first training step (the seed plus one line
that stamps the wall clock after step 1), tokens/s and the total wall time.

Run: ``PYTHONPATH=. python benchmarks/eval_bench.py [--repeats 20] [--no-write]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._report import table, update_section
from evo.evaluation.evaluator import EvalJob, evaluate_program, run_job
from evo.evaluation.isolation import Sandbox, resolve_sandbox
from evo.evaluation.slots import Slot, cpu_count
from evo.target import TargetError, load_target

ROOT = Path(__file__).resolve().parent.parent
TINYGPT = ROOT / "targets" / "tinygpt"
NOOP = "import json, os\njson.dump({'score': 0.0}, open(os.environ['EVO_RESULT'], 'w'))\n"
STEP_LINE = "    train_loss = h.step_done(loss)\n"
STAMP = (
    "    if h.steps == 1:  # benchmark only: when the first step finished\n"
    "        import time as _t; open('first_step.txt', 'w').write(repr(_t.time()))\n"
)


def spawn_to_first_line(code: str) -> float:
    env = {"PATH": os.environ.get("PATH", os.defpath), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    proc.wait()
    return elapsed


def plain_run(tmp: Path) -> float:
    """The same no-op child under a bare ``subprocess.run``: the floor run_job adds to."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "EVO_RESULT": str(tmp / "plain.json")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", NOOP], env=env, check=True)
    return time.perf_counter() - t0


def stats(samples: list[float]) -> list[str]:
    ms = [s * 1000 for s in samples]
    return [f"{statistics.median(ms):.0f}", f"{min(ms):.0f}", f"{max(ms):.0f}", str(len(ms))]


def measure(fn: Callable[[], float], n: int) -> list[float]:
    fn()  # warm the page cache once, so every sample sees the same state
    return [fn() for _ in range(n)]


_counter = iter(range(10**6))


def round_trip(
    tmp: Path, memory_mb: int | None, sandbox: Sandbox | None = None
) -> Callable[[], float]:
    def once() -> float:
        job = EvalJob(
            argv=[sys.executable, "child.py"],
            files={"child.py": NOOP},
            workdir=tmp / f"noop{next(_counter)}-{memory_mb}",
            metric="score",
            memory_mb=memory_mb,
            sandbox=sandbox,
        )
        t0 = time.perf_counter()
        result = run_job(job, Slot(0, None, 1))
        elapsed = time.perf_counter() - t0
        if result.status != "ok":
            raise RuntimeError(f"no-op child failed: {result.reason}")
        return elapsed

    return once


def paired(a: Callable[[], float], b: Callable[[], float], n: int) -> list[float]:
    """``b() - a()`` for ``n`` alternating pairs (after one warm-up of each)."""
    a(), b()
    return [-a() + b() for _ in range(n)]


def tinygpt_row(tmp: Path, root: Path, sandbox: Sandbox | None) -> tuple[list[list[object]], str]:
    """Rows for tinygpt tiny on one CPU core, or none and the reason it was left out."""
    try:
        target = load_target(root)
        fid = target.fidelity("tiny")
    except TargetError as e:
        return [], f"tinygpt row left out: {e}"
    source = target.seed_source()
    if STEP_LINE not in source:
        return [], "tinygpt row left out: train.py no longer has the step_done line to stamp"
    source = source.replace(STEP_LINE, STEP_LINE + STAMP, 1)
    workdir = tmp / "tinygpt"
    t0 = time.time()
    r = evaluate_program(
        target, source, fidelity=fid.name, workdir=workdir, slot=Slot(0, None, 1), sandbox=sandbox
    )
    if r.status != "ok":
        return [], f"tinygpt row left out: the seed ended {r.status}: {r.reason}"
    first = float((workdir / "first_step.txt").read_text()) - t0
    m = r.metrics
    rows = [
        [
            "tinygpt tiny (1 thread): spawn to first training step",
            f"{first * 1000:.0f}",
            "",
            "",
            "1",
        ],
        ["tinygpt tiny (1 thread): evaluation wall time", f"{r.wall_time * 1000:.0f}", "", "", "1"],
    ]
    where = "in the sandbox" if sandbox is not None else "without a sandbox"
    note = (
        f"tinygpt `tiny` on one CPU thread ({where}): **{m.get('tokens_per_s', float('nan')):,.0f} "
        f"tokens/s** over {m.get('train_seconds', 0):.1f} s of timed training "
        f"({m.get('steps', 0):.0f} steps, {m.get('params', 0):,.0f} params, "
        f"val_bpb {m.get('val_bpb_init', float('nan')):.3f} -> "
        f"{m.get('val_bpb', float('nan')):.3f})."
    )
    return rows, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--torch-repeats", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--tinygpt", type=Path, default=TINYGPT, help="the tinygpt target")
    args = parser.parse_args()
    headers = ["measurement", "median ms", "min ms", "max ms", "n"]
    rows: list[list[object]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="evo-eval-bench-") as d:
        tmp = Path(d)
        rows.append(
            [
                "spawn to first line: `python -c print()`",
                *stats(measure(lambda: spawn_to_first_line("print('up')"), args.repeats)),
            ]
        )
        rows.append(
            [
                "spawn to `import torch` done",
                *stats(
                    measure(
                        lambda: spawn_to_first_line("import torch; print('up')"), args.torch_repeats
                    )
                ),
            ]
        )
        rows.append(
            [
                "bare `subprocess.run` of the no-op child (floor)",
                *stats(measure(lambda: plain_run(tmp), args.repeats)),
            ]
        )
        rows.append(
            [
                "`run_job` round trip, no-op child",
                *stats(measure(round_trip(tmp, None), args.repeats)),
            ]
        )
        rows.append(
            [
                "`run_job` round trip, no-op child, memory limit on",
                *stats(measure(round_trip(tmp, 512), args.repeats)),
            ]
        )
        box, warning = resolve_sandbox("auto")
        sandbox = box if box.active else None
        if sandbox is not None:
            rows.append(
                [
                    "`run_job` round trip, no-op child, in the bubblewrap sandbox",
                    *stats(measure(round_trip(tmp, None, sandbox), args.repeats)),
                ]
            )
            rows.append(
                [
                    "sandbox start-up cost per evaluation (paired difference)",
                    *stats(
                        paired(round_trip(tmp, None), round_trip(tmp, None, sandbox), args.repeats)
                    ),
                ]
            )
        extra, note = tinygpt_row(tmp, args.tinygpt, sandbox)
        if sandbox is None:
            note += f" Sandbox rows left out: {warning}"
        rows += extra
    body = (
        table(headers, rows) + "\n\n" + note + "\n\n"
        "The round trip includes making the working dir, the allow-listed environment, "
        "output pumping, the final kill sweep over `/proc` (session, process group, "
        "descendants and the job marker) and result parsing. "
        f"Cores: {cpu_count()}; 1-minute load average {load_before:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after (a load above the core count means other work "
        "shared the CPUs and every row is slower than on an idle machine)."
    )
    print(body)
    if not args.no_write:
        update_section(
            "evaluator",
            "Evaluator start-up overhead",
            body,
            "PYTHONPATH=. python benchmarks/eval_bench.py",
        )


if __name__ == "__main__":
    main()
