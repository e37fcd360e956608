"""Evaluator for function_minimization in OpenEvolve's layout: ``evaluate(path)``.

It imports ``openevolve.evaluation_result`` unconditionally, as OpenEvolve's own examples do;
evo supplies a stand-in module when openevolve is not installed.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
import traceback

import numpy as np
from openevolve.evaluation_result import EvaluationResult

GLOBAL_MIN_X = 0.384957
GLOBAL_MIN_Y = -2.038930
GLOBAL_MIN_VALUE = -0.9736059
"""Found by a 4001x4001 grid over [-5, 5]^2 refined with Nelder-Mead."""

TRIALS = 8
NEAR = 0.05
"""A trial is a success when its point lies within this distance of the global minimum."""


def _load(program_path: str):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _failure(message: str, details: str) -> EvaluationResult:
    return EvaluationResult(metrics={"combined_score": 0.0, "error": 1.0},
                            artifacts={"error": message, "details": details})


def evaluate(program_path: str) -> EvaluationResult:
    """Run the program's ``run_search()`` TRIALS times and score how close it gets.

    Metrics (each in [0, 1], higher is better): ``value_score`` (1 / (1 + value gap)),
    ``distance_score`` (1 / (1 + distance to the minimum)), ``reliability`` (share of trials
    within NEAR of the minimum) and ``combined_score``, their weighted mean and the fitness.
    """
    try:
        program = _load(program_path)
        run_search = program.run_search
    except Exception as e:
        return _failure(f"could not load the program: {e}", traceback.format_exc())
    base_seed = int(os.environ.get("EVO_SEED", "0") or 0)
    values, distances, seconds = [], [], []
    for trial in range(TRIALS):
        np.random.seed(base_seed * 1000 + trial)
        start = time.perf_counter()
        try:
            x, y, value = run_search()
            x, y, value = float(x), float(y), float(value)
        except Exception as e:
            return _failure(f"trial {trial} raised {type(e).__name__}: {e}",
                            traceback.format_exc())
        seconds.append(time.perf_counter() - start)
        if not all(math.isfinite(v) for v in (x, y, value)):
            return _failure(f"trial {trial} returned a non-finite point", f"{(x, y, value)}")
        # Score the objective at the returned point ourselves: a program cannot claim a value.
        true_value = float(program.objective(x, y))
        if abs(true_value - value) > 1e-6 * max(1.0, abs(true_value)):
            return _failure(f"trial {trial} reported value {value} but f(x, y) = {true_value}",
                            f"{(x, y)}")
        if max(abs(x), abs(y)) > 5.0:
            return _failure(f"trial {trial} left the search box: ({x}, {y})", "")
        values.append(true_value)
        distances.append(math.hypot(x - GLOBAL_MIN_X, y - GLOBAL_MIN_Y))
    value_gap = float(np.mean(values)) - GLOBAL_MIN_VALUE
    value_score = 1.0 / (1.0 + max(value_gap, 0.0))
    distance_score = 1.0 / (1.0 + float(np.mean(distances)))
    reliability = float(np.mean([d < NEAR for d in distances]))
    combined = 0.5 * value_score + 0.3 * distance_score + 0.2 * reliability
    return EvaluationResult(
        metrics={"combined_score": combined, "value_score": value_score,
                 "distance_score": distance_score, "reliability": reliability,
                 "mean_value": float(np.mean(values)), "mean_distance": float(np.mean(distances)),
                 "mean_seconds": float(np.mean(seconds))},
        artifacts={"values": ", ".join(f"{v:.6f}" for v in values),
                   "distances": ", ".join(f"{d:.4f}" for d in distances)})
