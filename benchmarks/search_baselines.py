"""Search-quality baselines on the benchmark problems in ``benchmarks/problems/``.

Each problem is a target folder (OpenEvolve layout or ``target.toml``) plus ``space.toml``, the
*true* search space of its tuned constants, which the baselines here are told (evo is not: it
infers bounds from the seed's values). Three baselines spend a fixed number of evaluations,
the first always on the seed program's own values so that they line up with an evo run:

- ``random_sampling``: uniform draws from the true space (log-uniform where ``log``);
- ``greedy``: autoresearch-style keep/discard, one constant perturbed per step;
- ``optuna_tpe``: Optuna's TPE sampler with default settings, the seed enqueued first.

``best_so_far`` turns a run into the *true* value (the noise-free metric when the problem has
one) of the best *measured* program after 10, 20, 40, 60 and 100 evaluations.

``space.toml``::

    direction = "maximize"        # the target's direction
    true_metric = "true_score"    # optional: reported instead of the measured metric
    [params.LR]                   # a number: low, high, optional log and int
    low = 1e-4
    high = 1.0
    log = true
    [params.ACTIVATION]           # a choice: strings, numbers or booleans
    choices = ["relu", "tanh"]

Run every baseline on every problem (5 seeds, median best-so-far per mark):
``PYTHONPATH=. python benchmarks/search_baselines.py [--problems curve_fit deceptive] [--n 100]``
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import math
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evo.evaluation.evaluator import evaluate_program
from evo.target import Target, load_target

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

PROBLEMS_DIR = Path(__file__).resolve().parent / "problems"
PROBLEMS = (
    "curve_fit",
    "restart_search",
    "deceptive",
    "noisy_fit",
    "mlp_digits",
    "knn_choices",
)
"""The benchmark problems, in the order the report lists them."""
MARKS = (10, 20, 40, 60, 100)
"""Evaluation runs at which a search's best so far is read (:func:`marks_for` adds more for
a longer budget)."""
SIGNIFICANT_DIGITS = 4
"""Floats are written into programs rounded to this many significant digits."""
GREEDY_LOG_SIGMA = 0.5
"""Greedy's step for a log-scaled constant: ``x * exp(N(0, sigma))``."""
GREEDY_LINEAR_FRACTION = 0.15
"""Greedy's step for a linear constant: ``N(0, fraction * (high - low))``."""

Value = float | int | str | bool


@dataclass(frozen=True)
class Param:
    """One dimension of a true search space.

    Attributes:
        name: the module-level constant it sets.
        low, high: bounds of a numeric parameter (None for a choice).
        log: sampled and stepped on a log scale.
        integer: rounded to an integer.
        choices: the alternatives of a categorical parameter (None for a number).
    """

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Value, ...] | None = None

    @property
    def is_choice(self) -> bool:
        return self.choices is not None

    def clip(self, x: float) -> float | int:
        """A number moved into this numeric parameter's space.

        Args:
            x: any finite number.

        Returns:
            ``x`` clipped to ``[low, high]``: an int for an integer parameter, else a float
            rounded to ``SIGNIFICANT_DIGITS`` significant digits.
        """
        assert self.low is not None and self.high is not None
        x = min(max(float(x), self.low), self.high)
        if self.integer:
            return int(min(max(round(x), math.ceil(self.low)), math.floor(self.high)))
        return min(max(round_sig(x), self.low), self.high)

    def contains(self, value: Value) -> bool:
        """Whether ``value`` lies in this parameter's space.

        Args:
            value: a candidate value.

        Returns:
            True for one of the choices (same type), or a number within the bounds (an
            integral one for an integer parameter).
        """
        if self.choices is not None:
            return any(type(value) is type(c) and value == c for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high and (not self.integer or float(value).is_integer())


@dataclass(frozen=True)
class Problem:
    """A benchmark problem: a loaded target plus the true space of its constants.

    Attributes:
        name: the folder's name.
        root: the folder.
        target: the target as evo loads it.
        space: ``NAME -> Param``, in ``space.toml`` order.
        direction: ``maximize`` or ``minimize`` (the target's).
        true_metric: the noise-free metric reported by ``best_so_far``; None: the target's.
        seed_source: the evolving file as shipped.
        seed_values: the seed's value of every parameter in ``space``.
    """

    name: str
    root: Path
    target: Target
    space: dict[str, Param]
    direction: str
    true_metric: str | None
    seed_source: str
    seed_values: dict[str, Value]

    def better(self, a: float, b: float) -> bool:
        """Whether measured value ``a`` is strictly better than ``b``.

        Args:
            a: a measured value.
            b: another one.

        Returns:
            True when ``a`` beats ``b`` in the problem's direction.
        """
        return a > b if self.direction == "maximize" else a < b


@dataclass(frozen=True)
class Record:
    """One evaluation.

    Attributes:
        measured: the target's metric (what a search sees); None when the run failed.
        true: the problem's true metric, or the measured one when it has none.
        status: the evaluator's status (``ok``, ``crash``, ``timeout``, ...).
        values: the parameter values evaluated.
        seconds: wall time of the evaluation, start-up included.
    """

    measured: float | None
    true: float | None
    status: str
    values: dict[str, Value] = field(default_factory=dict)
    seconds: float = 0.0


def round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """Round to a number of significant digits.

    Args:
        x: the number.
        digits: significant digits kept.

    Returns:
        ``x`` rounded, as a float (0 and non-finite values unchanged).
    """
    if x == 0 or not math.isfinite(x):
        return float(x)
    return round(float(x), digits - 1 - math.floor(math.log10(abs(x))))


def _literal(node: ast.expr) -> Any:
    """The value of a literal expression; raises ValueError when it is not one."""
    return ast.literal_eval(node)


def _constants(source: str) -> dict[str, tuple[ast.Assign, Any]]:
    """Module-level ``NAME = literal`` assignments (one target, a literal value) by name."""
    out: dict[str, tuple[ast.Assign, Any]] = {}
    for stmt in ast.parse(source).body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            try:
                value = _literal(stmt.value)
            except ValueError:
                continue
            out[stmt.targets[0].id] = (stmt, value)
    return out


def _format(value: Value) -> str:
    if isinstance(value, float):
        return repr(round_sig(value))
    if isinstance(value, (bool, int, str)):
        return repr(value)
    raise TypeError(f"cannot write a {type(value).__name__} constant: {value!r}")


def write_values(source: str, values: dict[str, Value]) -> str:
    """The program text with the given module-level constants set to new values.

    Each ``NAME = literal`` line keeps everything but the literal (indentation, spacing and
    the trailing comment). Strings, booleans and integers are written with ``repr``; floats
    rounded to ``SIGNIFICANT_DIGITS`` significant digits.

    Args:
        source: the program's text.
        values: ``NAME -> value`` for the constants to set.

    Returns:
        The edited program text.

    Raises:
        KeyError: a name is not a module-level ``NAME = literal`` assignment of ``source``.
        TypeError: a value is not a str, bool, int or float.
        ValueError: an assignment's value spans several lines.
    """
    consts = _constants(source)
    lines = source.splitlines(keepends=True)
    for name, value in values.items():
        if name not in consts:
            raise KeyError(f"{name} is not a module-level NAME = literal constant of the program")
        node = consts[name][0].value
        if node.lineno != node.end_lineno:
            raise ValueError(f"{name}'s value spans several lines; write it on one line")
        i = node.lineno - 1
        # ast offsets count UTF-8 bytes: slice the encoded line
        raw = lines[i].encode("utf-8")
        start, end = node.col_offset, node.end_col_offset
        lines[i] = (raw[:start] + _format(value).encode("utf-8") + raw[end:]).decode("utf-8")
    return "".join(lines)


def _parse_space(file: Path) -> tuple[dict[str, Param], str | None, str | None]:
    data = tomllib.loads(file.read_text(encoding="utf-8"))
    params: dict[str, Param] = {}
    for name, spec in data.get("params", {}).items():
        if "choices" in spec:
            choices = tuple(spec["choices"])
            if len(choices) < 2:
                raise ValueError(f"{file}: params.{name}.choices needs at least two values")
            params[name] = Param(name, choices=choices)
            continue
        low, high = spec["low"], spec["high"]
        log, integer = bool(spec.get("log", False)), bool(spec.get("int", False))
        if not low < high or (log and low <= 0):
            raise ValueError(f"{file}: params.{name} needs low < high (and low > 0 with log)")
        params[name] = Param(name, float(low), float(high), log, integer)
    if not params:
        raise ValueError(f"{file}: no [params.NAME] tables")
    return params, data.get("direction"), data.get("true_metric")


def load_problem(name_or_path: str | Path) -> Problem:
    """Load a benchmark problem by name (a folder of ``benchmarks/problems``) or path.

    Args:
        name_or_path: ``curve_fit`` or a folder holding the target and ``space.toml``.

    Returns:
        The problem, with the seed's values of every parameter of the space.

    Raises:
        FileNotFoundError: no such folder, or it has no ``space.toml``.
        evo.target.TargetError: the target does not load.
        ValueError: ``space.toml`` is malformed, disagrees with the target's direction, or
            names a constant the seed lacks or whose seed value lies outside the space.
    """
    root = Path(name_or_path)
    if not root.is_dir():
        root = PROBLEMS_DIR / str(name_or_path)
    if not (root / "space.toml").is_file():
        raise FileNotFoundError(
            f"{root}: no space.toml; pass a problem folder or one of {PROBLEMS}"
        )
    target = load_target(root)
    space, direction, true_metric = _parse_space(root / "space.toml")
    if direction is not None and direction != target.direction:
        raise ValueError(
            f"{root}/space.toml: direction {direction!r} but the target's is {target.direction!r}"
        )
    source = target.seed_source()
    consts = _constants(source)
    seed_values: dict[str, Value] = {}
    for name, param in space.items():
        if name not in consts:
            raise ValueError(f"{root}/space.toml: {name} is not a constant of {target.evolve}")
        value = consts[name][1]
        if not param.contains(value):
            raise ValueError(f"{root}/space.toml: the seed's {name} = {value!r} is outside it")
        seed_values[name] = value
    return Problem(
        name=root.name,
        root=root.resolve(),
        target=target,
        space=space,
        direction=target.direction,
        true_metric=true_metric,
        seed_source=source,
        seed_values=seed_values,
    )


def evaluate(
    problem: Problem,
    values: dict[str, Value],
    workdir_root: str | Path,
    seed: int = 0,
    keep: bool = False,
) -> Record:
    """Evaluate the seed program with ``values`` written in, through evo's evaluator.

    Args:
        problem: the problem.
        values: constants to set (others keep the seed's values).
        workdir_root: a folder; each call runs in a fresh subfolder of it.
        seed: exported to the program as ``EVO_SEED``.
        keep: keep the subfolder (stdout, stderr, result); by default it is deleted.

    Returns:
        The record; ``measured`` and ``true`` are None unless the status is ``ok``.

    Raises:
        KeyError: a value names no constant of the program.
    """
    source = write_values(problem.seed_source, values)
    workdir = Path(workdir_root) / f"eval-{uuid.uuid4().hex[:12]}"
    start = time.perf_counter()
    res = evaluate_program(problem.target, source, workdir=workdir, seed=seed)
    seconds = time.perf_counter() - start
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    if res.status != "ok" or problem.target.metric not in res.metrics:
        return Record(None, None, res.status, dict(values), seconds)
    measured = float(res.metrics[problem.target.metric])
    true = measured
    if problem.true_metric is not None:
        true = res.metrics.get(problem.true_metric)
    return Record(measured, true, res.status, dict(values), seconds)


def _evaluate_all(
    problem: Problem, configs: Sequence[dict[str, Value]], workers: int
) -> list[Record]:
    with tempfile.TemporaryDirectory(prefix=f"baseline-{problem.name}-") as tmp:
        if workers <= 1:
            return [evaluate(problem, c, tmp) for c in configs]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda c: evaluate(problem, c, tmp), configs))


def sample(space: dict[str, Param], rng: np.random.Generator) -> dict[str, Value]:
    """One uniform draw from the space (log-uniform where ``log``, ints rounded).

    Args:
        space: the parameters.
        rng: the random generator.

    Returns:
        ``NAME -> value`` for every parameter.
    """
    out: dict[str, Value] = {}
    for name, p in space.items():
        if p.choices is not None:
            out[name] = p.choices[int(rng.integers(len(p.choices)))]
            continue
        assert p.low is not None and p.high is not None
        if p.log:
            x = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
        else:
            x = rng.uniform(p.low, p.high)
        out[name] = p.clip(x)
    return out


def perturb(param: Param, value: Value, rng: np.random.Generator) -> Value:
    """Greedy's step for one parameter; the result differs from ``value`` when it can.

    A choice is redrawn among the other alternatives; a log parameter is multiplied by
    ``exp(N(0, GREEDY_LOG_SIGMA))``, a linear one moved by ``N(0, GREEDY_LINEAR_FRACTION *
    range)``; both are clipped to the bounds, and an integer moves by at least 1.

    Args:
        param: the parameter.
        value: its current value.
        rng: the random generator.

    Returns:
        The new value.
    """
    if param.choices is not None:
        others = [c for c in param.choices if not (type(c) is type(value) and c == value)]
        return others[int(rng.integers(len(others)))]
    assert param.low is not None and param.high is not None
    for _ in range(20):
        if param.log:
            step = rng.normal(0.0, GREEDY_LOG_SIGMA)
            x = float(value) * math.exp(step)
        else:
            step = rng.normal(0.0, GREEDY_LINEAR_FRACTION * (param.high - param.low))
            x = float(value) + step
        new = param.clip(x)
        if param.integer and new == value:
            new = param.clip(float(value) + (1 if step >= 0 else -1))
            if new == value:  # at a bound: go the other way
                new = param.clip(float(value) - (1 if step >= 0 else -1))
        if new != value:
            return new
    return value


def random_sampling(problem: Problem, n: int, rng_seed: int, workers: int = 2) -> list[Record]:
    """Random search over the true space: the seed first, then ``n - 1`` uniform draws.

    Args:
        problem: the problem.
        n: evaluations, the seed's included.
        rng_seed: seeds the sampler.
        workers: evaluations run at once.

    Returns:
        ``n`` records in sampling order.
    """
    rng = np.random.default_rng(rng_seed)
    configs = [dict(problem.seed_values)] + [sample(problem.space, rng) for _ in range(n - 1)]
    return _evaluate_all(problem, configs[:n], workers)


def greedy(
    problem: Problem,
    n: int,
    rng_seed: int,
    workers: int = 2,
    start: dict[str, Value] | None = None,
    frozen: Sequence[str] = (),
) -> list[Record]:
    """Keep/discard hill climbing: perturb one constant of the incumbent, keep it if better.

    Sequential (``workers`` is accepted for a common signature). A child replaces the
    incumbent only when its measured value is strictly better; failures are discarded.

    Args:
        problem: the problem.
        n: evaluations, the start's included.
        rng_seed: seeds the choice of constant and the steps.
        workers: ignored.
        start: the first values (default: the seed's); missing names take the seed's.
        frozen: parameters never perturbed.

    Returns:
        ``n`` records in evaluation order.

    Raises:
        ValueError: every parameter is frozen.
    """
    del workers
    rng = np.random.default_rng(rng_seed)
    names = [k for k in problem.space if k not in frozen]
    if not names:
        raise ValueError("greedy needs at least one parameter that is not frozen")
    incumbent = {**problem.seed_values, **(start or {})}
    records: list[Record] = []
    best: float | None = None
    with tempfile.TemporaryDirectory(prefix=f"baseline-{problem.name}-") as tmp:
        for i in range(n):
            values = dict(incumbent)
            if i > 0:
                name = names[int(rng.integers(len(names)))]
                values[name] = perturb(problem.space[name], incumbent[name], rng)
            rec = evaluate(problem, values, tmp)
            records.append(rec)
            if rec.measured is not None and (best is None or problem.better(rec.measured, best)):
                best, incumbent = rec.measured, values
    return records


def _distributions(space: dict[str, Param]) -> dict[str, Any]:
    import optuna

    out: dict[str, Any] = {}
    for name, p in space.items():
        if p.choices is not None:
            out[name] = optuna.distributions.CategoricalDistribution(p.choices)
        elif p.integer:
            assert p.low is not None and p.high is not None
            out[name] = optuna.distributions.IntDistribution(
                math.ceil(p.low), math.floor(p.high), log=p.log
            )
        else:
            out[name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)
    return out


def optuna_tpe(problem: Problem, n: int, rng_seed: int, workers: int = 2) -> list[Record]:
    """Optuna's TPE (default settings) over the true space, the seed enqueued as trial 0.

    Trials are asked ``workers`` at a time, evaluated at once and told in order, so a run is
    reproducible. A failed evaluation is told as a failed trial.

    Args:
        problem: the problem.
        n: evaluations, the seed's included.
        rng_seed: the sampler's seed.
        workers: trials asked ahead and evaluated at once.

    Returns:
        ``n`` records in trial order.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=problem.direction, sampler=optuna.samplers.TPESampler(seed=rng_seed)
    )
    seed = dict(problem.seed_values)
    for name, p in problem.space.items():
        if p.choices is None and not p.integer:
            seed[name] = float(seed[name])  # a float parameter written as an int literal
    study.enqueue_trial(seed)
    dists = _distributions(problem.space)
    records: list[Record] = []
    batch = max(1, workers)
    while len(records) < n:
        trials = [study.ask(dists) for _ in range(min(batch, n - len(records)))]
        configs = []
        for trial in trials:
            values = {}
            for name, p in problem.space.items():
                v = trial.params[name]
                values[name] = v if p.choices is not None else p.clip(v)
            configs.append(values)
        recs = _evaluate_all(problem, configs, workers)
        for trial, rec in zip(trials, recs, strict=True):
            if rec.measured is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, rec.measured)
        records.extend(recs)
    return records


METHODS: dict[str, Callable[..., list[Record]]] = {
    "random": random_sampling,
    "greedy": greedy,
    "tpe": optuna_tpe,
}


def marks_for(n: int) -> list[int]:
    """The marks a search of ``n`` evaluation runs is read at: :data:`MARKS` up to ``n``, every
    hundred after them, and ``n`` itself. ``marks_for(300) == [10, 20, 40, 60, 100, 200, 300]``."""
    out = [m for m in MARKS if m <= n] + list(range(200, n + 1, 100))
    return out if n in out else [*out, n]


def best_so_far(
    records: Sequence[Record], direction: str, marks: Sequence[int] = MARKS
) -> dict[int, float | None]:
    """The true value of the best measured record among the first ``mark`` records.

    Args:
        records: a run, in evaluation order.
        direction: ``maximize`` or ``minimize``, for the measured values.
        marks: prefix lengths.

    Returns:
        ``mark -> true value`` of the record with the best measured value among the first
        ``mark`` (the earliest on ties); None when no record there succeeded or the run is
        shorter than the mark.

    Raises:
        ValueError: ``direction`` is neither ``maximize`` nor ``minimize``.
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    sign = 1.0 if direction == "maximize" else -1.0
    out: dict[int, float | None] = {}
    for mark in marks:
        best: Record | None = None
        best_key = -math.inf
        if mark <= len(records):
            for rec in records[:mark]:
                if rec.measured is not None and (best is None or sign * rec.measured > best_key):
                    best, best_key = rec, sign * rec.measured
        out[mark] = None if best is None else best.true
    return out


def _run_one(args: tuple[str, str, int, int]) -> tuple[str, str, int, list[Record]]:
    problem_name, method, seed, n = args
    problem = load_problem(problem_name)
    return problem_name, method, seed, METHODS[method](problem, n, seed, workers=1)


def _median(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the baselines on the problems and print median best-so-far per mark.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", type=int, default=5, help="rng seeds 0..N-1")
    ap.add_argument("--n", type=int, default=max(MARKS), help="evaluations per run")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (one evaluation each)")
    args = ap.parse_args(argv)
    marks = marks_for(args.n)
    jobs = [
        (p, m, s, args.n) for p in args.problems for m in args.methods for s in range(args.seeds)
    ]
    results: dict[tuple[str, str], list[list[Record]]] = {}
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for problem_name, method, _seed, records in pool.map(_run_one, jobs):
            results.setdefault((problem_name, method), []).append(records)
    wall = time.perf_counter() - start
    header = ["problem", "method"] + [f"@{m}" for m in marks] + ["s/eval", "failed"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for problem_name in args.problems:
        direction = load_problem(problem_name).direction
        for method in args.methods:
            runs = results[(problem_name, method)]
            curves = [best_so_far(r, direction, marks) for r in runs]
            meds = [_median([c[m] for c in curves]) for m in marks]
            secs = statistics.mean(rec.seconds for r in runs for rec in r)
            failed = sum(rec.measured is None for r in runs for rec in r)
            cells = ["-" if v is None else f"{v:.4g}" for v in meds]
            print(" | ".join([problem_name, method, *cells, f"{secs:.2f}", str(failed)]))
    print(f"\n{len(jobs)} runs of {args.n} evaluations, {args.seeds} seeds, {wall:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
