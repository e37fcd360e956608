"""Search-quality benchmark: evo against random sampling, greedy keep/discard and Optuna TPE.

Every method spends the same number of evaluation runs on each problem of
``benchmarks/problems/`` (each seed run of each program counts, the seed program's included).
The baselines are told the problem's true search space (``space.toml``); evo is not: it infers
bounds from the seed's values (or the target's ``[ranges]``/``[choices]``). Methods:

- ``evo default``: ``evo run`` as it ships (structural operators, no LLM);
- ``evo greedy``: the same with ``--selection greedy`` (always the best elite as parent);
- ``evo uniform``: the same with ``--selection uniform`` (plain MAP-Elites selection);
- ``evo tpe only``: evo with every structural operator but ``tpe`` off (weight 0): evo's own
  model-based sampler alone, on the bounds it infers, against the baseline TPE on the true ones;
- ``evo told the space``: evo default given the true space as the run's ``[ranges]`` and
  ``[choices]`` (what a user who knows the bounds writes in run.toml): the same information the
  baselines get, so the comparison with ``tpe`` is of search alone;
- ``random``, ``greedy``, ``tpe``: :mod:`benchmarks.search_baselines`.

For each (problem, method) the table shows the median over seeds of the best-so-far at 10, 20,
40, 60 and 100 runs (and the mean at 100: a rare escape from a local optimum shows there
before it moves a median), reported at its true (noise-free) value where the problem has one: the
program a method would hand over at that point, not its lucky draw. ``seed extra +
re-measured``: median runs evo spent on the seed beyond its first (the fewest that establish
whether the evaluator is deterministic: one when two runs agree) + runs re-measuring children
(the noise gate; zero on a deterministic evaluator). The verdict
compares evo default with each other method at 40 and 100 runs: ``>``/``<`` when the medians
differ by more than half the larger interquartile range over seeds, ``=`` otherwise (a tie
within the seeds' spread). ``normalised`` is ``(value - seed) / (best - seed)`` with ``best``
the best value any method reached on that problem, so problems can be compared; its median
over problems is judged the same way, over *suite runs* (every problem once at seed ``i``,
:func:`suite_medians`).

Run: ``PYTHONPATH=. python benchmarks/search_bench.py [--seeds 5] [--evaluations 100]
[--problems curve_fit ...] [--methods "evo default" tpe ...] [--cache FILE] [--no-write]``.
A problem may also be a path to another folder with a ``space.toml``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evo  # noqa: E402
from archive import RunStore, remeasurement_runs  # noqa: E402
from benchmarks._report import table, update_section  # noqa: E402
from benchmarks.search_baselines import (  # noqa: E402
    METHODS,
    PROBLEMS,
    Problem,
    best_so_far,
    load_problem,
    marks_for,
)

EVO_METHODS: dict[str, dict[str, Any]] = {
    "evo default": {},
    "evo greedy": {"archive.selection": "greedy"},
    "evo uniform": {"archive.selection": "uniform"},
    "evo tpe only": {
        f"operators.{name}": 0.0
        for name in ("constants", "tpe_local", "choice", "toggle", "uniform_crossover", "merge")
    },
}
TOLD = "evo told the space"
BASELINES = {"random": "random", "greedy": "greedy", "tpe": "tpe"}
ALL_METHODS = [*EVO_METHODS, TOLD, *BASELINES]
COMPARED_AT = (40, 100)


def told_space(problem: Problem) -> dict[str, Any]:
    """The problem's true space as run-config overrides (``ranges.NAME``, ``choices.NAME``);
    flags (true/false choices) are left out: evo finds them by itself."""
    out: dict[str, Any] = {}
    for name, param in problem.space.items():
        if param.choices is not None:
            if all(isinstance(c, str) for c in param.choices):
                out[f"choices.{name}"] = list(param.choices)
        else:
            out[f"ranges.{name}"] = [param.low, param.high]
    return out


def evo_curve(problem: Problem, overrides: dict[str, Any], n: int, seed: int) -> dict:
    """One evo run: best-so-far (true values) at each mark and the runs spent re-measuring."""
    with tempfile.TemporaryDirectory(prefix=f"search-{problem.name}-") as tmp:
        run_dir = Path(tmp) / "run"
        cfg = evo.load_config(
            None,
            {
                "run.target": str(problem.root),
                "run.run_dir": str(run_dir),
                "run.evaluations": n,
                "run.seed": seed,
                **overrides,
            },
        )
        t0 = time.perf_counter()
        evo.Search(cfg, progress=False).run()
        seconds = time.perf_counter() - t0
        store = RunStore.read(run_dir)
        metric = problem.true_metric or problem.target.metric
        seed = store.programs[(store.meta["seed_id"], store.meta["fidelity"])]
        remeasured = remeasurement_runs(store.programs.values())
        return {
            "curve": store_curve(store, problem, marks_for(n)),
            "remeasure": sum(remeasured.values()),
            "baseline": remeasured.get("baseline", 0),
            "seed_value": seed.metrics_mean().get(metric),
            "seconds": seconds,
        }


def store_curve(store: RunStore, problem: Problem, marks: Sequence[int]) -> dict[int, float]:
    """The true value of the archive's best program once ``mark`` runs had finished.

    Runs count when their program finishes (a program measured three times counts three at
    once); the best is the archive's own choice at that point (a confidence bound on a noisy
    problem), reported at the problem's true metric where it has one.
    """
    fid = store.meta["fidelity"]
    sign = 1.0 if problem.direction == "maximize" else -1.0
    metric = problem.true_metric or problem.target.metric
    done, best_id, best_value = 0, None, None
    timeline: list[tuple[int, str | None]] = []
    for row in store.history:
        if row.fidelity != fid:
            continue
        p = store.programs[(row.id, fid)]
        done += len(p.runs)
        if row.best is not None and (best_value is None or sign * row.best > sign * best_value):
            best_value = row.best
            best_id = row.id if p.fitness == row.best else _with_fitness(store, fid, row.best)
        timeline.append((done, best_id))
    out: dict[int, float] = {}
    for mark in marks:
        ids = [b for d, b in timeline if d <= mark and b is not None]
        pid = ids[-1] if ids else store.meta["seed_id"]
        out[mark] = store.programs[(pid, fid)].metrics_mean().get(metric, float("nan"))
    return out


def _with_fitness(store: RunStore, fid: str, fitness: float) -> str | None:
    for p in store.programs.values():
        if p.fidelity == fid and p.fitness == fitness:
            return p.id
    return None


def baseline_curve(problem: Problem, method: str, n: int, seed: int) -> dict:
    t0 = time.perf_counter()
    records = METHODS[method](problem, n, seed, workers=2)
    return {
        "curve": best_so_far(records, problem.direction, marks_for(n)),
        "remeasure": 0,
        "seed_value": records[0].true,
        "seconds": time.perf_counter() - t0,
    }


def _iqr(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[2] - q[0]


def verdict(a: list[float], b: list[float], sign: float) -> str:
    """``>`` when ``a`` is better than ``b`` beyond half the larger IQR, ``<`` worse, else ``=``."""
    diff = sign * (statistics.median(a) - statistics.median(b))
    margin = 0.5 * max(_iqr(a), _iqr(b))
    return ">" if diff > margin else "<" if diff < -margin else "="


def suite_medians(per_problem: Sequence[Sequence[float]]) -> list[float]:
    """The median over problems of one *suite run* (every problem once, at seed ``i``), for
    each seed ``i``: ``per_problem[p][i]`` is problem ``p``'s normalised value at seed ``i``.
    Their spread is how much the median over problems moves between runs of the suite, which
    the verdict on it needs (the median of the per-problem medians has none).

    Example:
        >>> suite_medians([[0.2, 1.0], [0.4, 0.8], [0.9, 0.6]])
        [0.4, 0.8]
    """
    return [statistics.median(column) for column in zip(*per_problem, strict=True)]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    ap.add_argument("--methods", nargs="*", default=ALL_METHODS)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--evaluations", type=int, default=100)
    ap.add_argument("--cache", help="JSON file keeping finished runs (resume a long benchmark)")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="an extra evo method, e.g. 'exploit 0.7:archive.exploit=0.7'",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODULE.NAME=VALUE",
        help="experiments: set a module constant for every evo method, e.g. evo.policy.FLOOR=0.05",
    )
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = ap.parse_args(argv)
    evo_methods = dict(EVO_METHODS)
    for v in args.variant:
        name, _, spec = v.partition(":")
        evo_methods[name] = {
            k: json.loads(x) for k, x in (kv.split("=", 1) for kv in spec.split(",") if kv)
        }
    for assignment in args.set:
        target, _, value = assignment.partition("=")
        module, _, name = target.rpartition(".")
        setattr(importlib.import_module(module), name, json.loads(value))
    methods = list(args.methods) + [n for n in evo_methods if n not in EVO_METHODS]
    for m in methods:
        if m not in evo_methods and m not in BASELINES and m != TOLD:
            ap.error(f"unknown method {m!r}; known: {[*evo_methods, TOLD, *BASELINES]}")
    n = args.evaluations
    marks = marks_for(n)
    cache_path = Path(args.cache) if args.cache else None
    cache = json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
    problems = {name: load_problem(name) for name in args.problems}
    results: dict[tuple[str, str], list[dict]] = {}
    for pname, problem in problems.items():
        for method in methods:
            for seed in range(args.seeds):
                key = f"{problem.name}|{method}|{seed}|{n}"
                if key not in cache:
                    if method == TOLD:
                        run = evo_curve(problem, told_space(problem), n, seed)
                    elif method in evo_methods:
                        run = evo_curve(problem, evo_methods[method], n, seed)
                    else:
                        run = baseline_curve(problem, BASELINES[method], n, seed)
                    cache[key] = json.loads(json.dumps(run))  # as the cache file holds it
                    if cache_path:
                        cache_path.write_text(json.dumps(cache))
                    print(
                        f"{problem.name} {method} seed {seed}: @{n} "
                        f"{cache[key]['curve'][str(n)]:.5g} ({run['seconds']:.0f} s)",
                        file=sys.stderr,
                    )
                run = cache[key]
                curve = {int(k): v for k, v in run["curve"].items()}
                results.setdefault((pname, method), []).append({**run, "curve": curve})
    # the runs' own time (runs kept in --cache from an earlier invocation included)
    wall = sum(r["seconds"] for runs in results.values() for r in runs)

    rows, verdict_rows, norm = [], [], {m: [] for m in methods}
    per_seed: dict[str, list[list[float]]] = {m: [] for m in methods}  # [problem][seed]
    for pname, problem in problems.items():
        sign = 1.0 if problem.direction == "maximize" else -1.0
        finals = [r["curve"][marks[-1]] for m in methods for r in results[(pname, m)]]
        best = max(finals, key=lambda v: sign * v)
        seed_value = statistics.median(
            r["seed_value"] for m in methods for r in results[(pname, m)]
        )
        for m in methods:
            runs = results[(pname, m)]
            meds = [statistics.median(r["curve"][k] for r in runs) for k in marks]
            baseline = statistics.median(r.get("baseline", 0) for r in runs)
            gated = statistics.median(r["remeasure"] - r.get("baseline", 0) for r in runs)
            rows.append(
                [
                    pname,
                    m,
                    *(f"{v:.4g}" for v in meds),
                    f"{statistics.mean(r['curve'][marks[-1]] for r in runs):.4g}",
                    f"{baseline:g} + {gated:g}" if m in evo_methods or m == TOLD else "-",
                ]
            )
            span = best - seed_value
            norm[m].append((meds[-1] - seed_value) / span if span else 1.0)
            per_seed[m].append(
                [(r["curve"][marks[-1]] - seed_value) / span if span else 1.0 for r in runs]
            )
        if "evo default" in methods:
            base = results[(pname, "evo default")]
            cells = []
            for m in methods:
                if m == "evo default":
                    continue
                other = results[(pname, m)]
                v = [
                    verdict([r["curve"][k] for r in base], [r["curve"][k] for r in other], sign)
                    for k in COMPARED_AT
                    if k in marks
                ]
                cells.append(f"{m}: {'/'.join(v)}")
            verdict_rows.append([pname, "; ".join(cells)])
    main_table = table(
        [
            "problem",
            "method",
            *(f"@{k}" for k in marks),
            f"mean @{marks[-1]}",
            "seed extra + re-measured",
        ],
        rows,
    )
    suites = {m: suite_medians(v) for m, v in per_seed.items()}
    norm_table = table(
        [
            "method",
            "median normalised @" + str(marks[-1]),
            "per problem",
            "per suite run: median (IQR)",
            "evo default vs it",
        ],
        [
            [
                m,
                f"{statistics.median(v):.3f}",
                ", ".join(f"{x:.2f}" for x in v),
                f"{statistics.median(suites[m]):.3f} ({_iqr(suites[m]):.3f})",
                verdict(suites["evo default"], suites[m], 1.0)
                if "evo default" in suites and m != "evo default"
                else "",
            ]
            for m, v in norm.items()
        ],
    )
    verdicts = table(
        ["problem", f"evo default vs each method at {' / '.join(map(str, COMPARED_AT))} runs"],
        verdict_rows,
    )
    body = (
        f"{args.seeds} seeds per method, {n} evaluation runs each (every seed run counted), "
        "median best-so-far over seeds, at its true value where the problem has one. "
        "Baselines are told the true space; evo infers it. Problems: `benchmarks/problems/` "
        f"(each has a README). The runs took {wall / 60:.0f} min (summed).\n\n"
        f"{main_table}\n\n"
        "Verdicts (`>` better, `=` tie within half the larger interquartile range over seeds, "
        f"`<` worse):\n\n{verdicts}\n\n"
        "Normalised: `(value - seed) / (best any method reached - seed)` at the last mark, "
        "median over problems; a *suite run* is every problem once at the same seed, and its "
        "median over problems (of each run's own value, not of the medians) gives the spread "
        "the verdict against evo default needs (same rule as above):"
        f"\n\n{norm_table}\n"
    )
    print(body)
    if not args.no_write:
        command = "PYTHONPATH=. python benchmarks/search_bench.py --cache /tmp/search_bench.json"
        if args.seeds != 5:
            command += f" --seeds {args.seeds}"
        if list(args.methods) != ALL_METHODS:
            command += " --methods " + " ".join(f'"{m}"' if " " in m else m for m in args.methods)
        update_section("search", "Search quality (benchmarks/search_bench.py)", body, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
