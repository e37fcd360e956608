"""``tpe``: propose a whole new setting of the parent's constants with a model-based sampler.

The seed's constants form a search space (:mod:`operators.space`: bounds from ``[ranges]`` and
``[choices]``, otherwise inferred from the seed's values). Every program of the run is a trial
in it: its constants' values and its fitness. Optuna's Tree-structured Parzen Estimator
(Bergstra et al. 2011, "Algorithms for Hyper-Parameter Optimization"; multivariate, as in
Falkner et al. 2018, "BOHB") is told those trials through its ask/tell interface and asked for
the next point, which is written into the parent as a child. TPE handles the mixed spaces of
training scripts (log-scaled floats, integers, choices, flags) natively, which CMA-ES does not.

- Programs still being evaluated are told as running trials (Optuna's constant liar), so
  parallel slots are not all handed the same point.
- A failed program is told with the worst fitness the run has seen, so the sampler learns to
  stay away from settings that crash or diverge.
- Until :data:`STARTUP_TRIALS` programs are finished, TPE samples the space at random: early
  on this operator is random search over the inferred bounds (which widen as the best
  program nears their edge; trials outside them are told at the edge); later it concentrates
  where the good programs are.
- History from programs with other code (a toggled statement, a merge) is used as it is:
  their constants mean the same things.

Constants the parent lacks are left alone; values equal to the parent's are not rewritten, so
the child's diff shows only what changed.

``tpe_local`` is the same sampler confined to a *trust region* around the parent, as TuRBO
does for Bayesian optimisation (Eriksson et al. 2019, "Scalable Global Optimization via Local
Bayesian Optimization"): each numeric constant may move by at most ``LOCAL_RADIUS x
context.step_scale`` of its range's width (on its own scale), choices and flags keep the
parent's values, and the model is told only the trials inside the region. So it refines an
elite with a model of its own neighbourhood: the best's, or a niche's elite that the global
model, drawn to the best, would never propose near. The run adapts the radius like
``constants``' step (larger while it keeps succeeding).

Description: ``LR: 0.01 -> 0.0342; EPOCHS: 20 -> 57``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archive.program import FAILED, PENDING, Program
from operators.base import Child, Context, Operator, parent_parsed, replace_statements
from operators.errors import NoChild, ValidationError
from operators.parsed import parsed
from operators.space import Param, Value, infer_space, read_point, write_point

LOCAL_RADIUS = 0.1
"""``tpe_local``'s trust region at step scale 1: this fraction of each range's width either
side of the parent."""
STARTUP_TRIALS = 8
"""Finished trials before TPE leaves random sampling (Optuna's default is 10)."""
MAX_TRIALS = 400
"""Trials told per proposal: the best quarter and the most recent rest (the cost of a TPE
proposal grows with the trials; 400 keep it under ~0.2 s)."""
_POINTS_CACHE = 20_000


class SampleConstants(Operator):
    """Propose the parent's constants from a TPE model of the run (see the module docstring)."""

    name = "tpe"
    arity = 1
    local = False

    def __init__(self) -> None:
        self._points: OrderedDict[str, dict[str, Value] | None] = OrderedDict()
        self._lock = threading.Lock()

    def propose(
        self, parents: Sequence[Program], context: Context, rng: np.random.Generator
    ) -> Child:
        self._check_arity(parents)
        p = parent_parsed(parents[0])
        space = infer_space(context.seed_source, context.ranges, context.choices, context.block)
        current = read_point(p, space, context.block)
        active = {name: space[name] for name in space if name in current}
        if not active:
            raise NoChild("tpe: the parent has none of the seed's constants")
        trials = self._trials(context, active)
        active = _widened(active, trials, context.direction)
        fixed: dict[str, Value] = {}
        if self.local:
            active, fixed = _trust_region(active, current, LOCAL_RADIUS * context.step_scale)
            if not active:
                raise NoChild(f"{self.name}: the parent has no numeric constant to refine")
            trials = [t for t in trials if _inside(t.point, active, fixed)]
        values = _ask(active, trials, context.direction, int(rng.integers(2**31)))
        stmts, notes = write_point(p, active, values, context.block)
        if not notes:
            raise NoChild("tpe: the sampler proposed the parent's own values")
        return self._finish(replace_statements(p, stmts), parents, context, "; ".join(notes))

    def _point(self, program: Program, space: Mapping[str, Param], block: bool) -> dict | None:
        """The program's constants (cached by program id: a program's source never changes)."""
        key = f"{program.id}:{block}"
        with self._lock:
            if key in self._points:
                self._points.move_to_end(key)
                return self._points[key]
        try:
            point: dict[str, Value] | None = read_point(parsed(program.source), space, block)
        except ValidationError:
            point = None
        with self._lock:
            self._points[key] = point
            if len(self._points) > _POINTS_CACHE:
                self._points.popitem(last=False)
        return point

    def _trials(self, context: Context, space: Mapping[str, Param]) -> list[_Trial]:
        out = []
        seen = set()
        for prog in context.history:
            if prog.id in seen or prog.status == "duplicate":
                continue
            seen.add(prog.id)
            point = self._point(prog, space, context.block)
            if not point:
                continue
            if prog.status == PENDING:
                out.append(_Trial(point, None, running=True, birth=prog.birth))
            elif prog.status in FAILED:
                out.append(_Trial(point, None, running=False, birth=prog.birth))
            elif prog.fitness is not None and math.isfinite(prog.fitness):
                out.append(_Trial(point, float(prog.fitness), running=False, birth=prog.birth))
        return _capped(out, context.direction)


class LocalSampleConstants(SampleConstants):
    """TPE in a trust region around the parent (see the module docstring)."""

    name = "tpe_local"
    local = True


def _trust_region(
    space: Mapping[str, Param], current: Mapping[str, Value], radius: float
) -> tuple[dict[str, Param], dict[str, Value]]:
    """Numeric params narrowed to ``radius`` x their width around the parent's value (at
    least one step for integers); choices and flags fixed at the parent's values."""
    region: dict[str, Param] = {}
    fixed: dict[str, Value] = {}
    for name, param in space.items():
        if not param.numeric or (param.log and current[name] == 0):
            fixed[name] = current[name]  # a zero (weight decay off) stays off
            continue
        x = param.encode(current[name])
        if x is None or (param.log and x <= 0):
            continue
        x = float(x)  # the parent may lie outside the soft range: the region follows it
        if param.log:
            lo, hi, c = math.log10(param.low), math.log10(param.high), math.log10(x)
            r = radius * (hi - lo)
            low, high = 10.0 ** max(min(lo, c), c - r), 10.0 ** min(max(hi, c), c + r)
        else:
            r = radius * (param.high - param.low)
            low, high = max(min(param.low, x), x - r), min(max(param.high, x), x + r)
        if param.integer:
            low = max(param.low, min(math.floor(low), x - 1))
            high = min(param.high, max(math.ceil(high), x + 1))
        low, high = min(low, x), max(high, x)
        region[name] = dataclasses.replace(param, low=low, high=high, hard=True)
    return region, fixed


def _inside(point: Mapping[str, Value], region: Mapping[str, Param], fixed: Mapping) -> bool:
    """The trial lies in the trust region: same choices and flags, numbers within bounds."""
    if any(point.get(name) != value for name, value in fixed.items()):
        return False
    for name, param in region.items():
        x = param.encode(point[name]) if name in point else None
        if x is None or not param.low <= x <= param.high:
            return False
    return True


class _Trial:
    __slots__ = ("point", "value", "running", "birth")

    def __init__(
        self, point: dict[str, Value], value: float | None, *, running: bool, birth: int
    ) -> None:
        self.point, self.value, self.running, self.birth = point, value, running, birth


def _capped(trials: list[_Trial], direction: str) -> list[_Trial]:
    if len(trials) <= MAX_TRIALS:
        return trials
    sign = -1.0 if direction == "maximize" else 1.0
    scored = sorted(
        (t for t in trials if t.value is not None),
        key=lambda t: sign * t.value,  # type: ignore[operator]
    )
    keep = {id(t) for t in scored[: MAX_TRIALS // 4]}
    recent = sorted(trials, key=lambda t: -t.birth)
    for t in recent:
        if len(keep) >= MAX_TRIALS:
            break
        keep.add(id(t))
    return [t for t in trials if id(t) in keep]


def _widened(
    space: Mapping[str, Param], trials: Sequence[_Trial], direction: str
) -> dict[str, Param]:
    """Soft bounds grown to follow the best trial past an edge."""
    done = [t for t in trials if t.value is not None]
    best = None
    if done:
        best = (max if direction == "maximize" else min)(done, key=lambda t: t.value).point
    out = {}
    for name, param in space.items():
        # a zero on a log scale is encoded at the range's bottom: it says nothing of bounds
        b = best.get(name) if best else None
        b = param.encode(b) if b is not None and not (param.log and b == 0) else None
        out[name] = param.widened(float(b) if isinstance(b, (int, float)) else None)
    return out


def _distribution(param: Param) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if not param.numeric:
        return CategoricalDistribution(param.choices)
    if param.integer:
        return IntDistribution(int(param.low), int(param.high), log=param.log)
    return FloatDistribution(float(param.low), float(param.high), log=param.log)


def _ask(
    space: Mapping[str, Param], trials: Sequence[_Trial], direction: str, seed: int
) -> dict[str, Value]:
    """One point from a TPE study told ``trials``, as program values."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {name: _distribution(param) for name, param in space.items()}
    values = [t.value for t in trials if t.value is not None]
    if direction == "maximize":
        worst = min(values) if values else 0.0
    else:
        worst = max(values) if values else 0.0
    frozen = []
    for t in trials:
        params = {}
        for name, param in space.items():
            x = param.encode(t.point[name]) if name in t.point else None
            if x is None:
                continue
            params[name] = param.clip(x) if param.numeric else x  # type: ignore[arg-type]
        if not params:
            continue
        kw: dict[str, Any] = {
            "params": params,
            "distributions": {n: dists[n] for n in params},
        }
        if t.running:
            frozen.append(create_trial(state=TrialState.RUNNING, **kw))
        else:
            frozen.append(create_trial(value=t.value if t.value is not None else worst, **kw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate and constant_liar are "experimental"
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            constant_liar=True,
            n_startup_trials=STARTUP_TRIALS,
            warn_independent_sampling=False,
        )
        study = optuna.create_study(direction=direction, sampler=sampler)
        study.add_trials(frozen)
        trial = study.ask(dists)
    return {name: space[name].decode(trial.params[name]) for name in space}
