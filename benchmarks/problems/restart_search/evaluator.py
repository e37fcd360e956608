"""Evaluator for restart_search (OpenEvolve layout): run ``minimise`` on a shifted Rastrigin.

The objective is the 5-D Rastrigin function ``10 d + sum(z**2 - 10 cos(2 pi z))`` with
``z = x - SHIFT`` on the box ``[-5.12, 5.12]^5``: a bowl covered by a lattice of local minima
(about 10^5 in the box), the global minimum 0 at ``SHIFT``. Each of ``TRIALS`` runs gets a
budget of ``BUDGET`` evaluations, enforced here (a call past it raises), and its own fixed
random generator, so the score is deterministic (``EVO_SEED`` is ignored). The returned point
is re-scored here; ``combined_score = -mean best value`` (maximised, at most 0).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one BLAS thread: faster for these sizes, and bitwise repeatable

import importlib.util  # noqa: E402
import math  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

DIM = 5
LOWER = np.full(DIM, -5.12)
UPPER = np.full(DIM, 5.12)
SHIFT = np.array([1.37, -2.21, 0.64, 2.83, -1.52])
BUDGET = 1500
TRIALS = 3
TRIAL_SEEDS = (11, 22, 33)
FAILED_SCORE = -200.0
"""Score of a program that fails: below the worst value in the box (about 140)."""


class BudgetExceeded(RuntimeError):
    """The program called the objective more than ``BUDGET`` times."""


def rastrigin(x: np.ndarray) -> float:
    z = np.asarray(x, dtype=float) - SHIFT
    return float(10.0 * DIM + np.sum(z * z - 10.0 * np.cos(2.0 * math.pi * z)))


class CountedObjective:
    """The objective with a call counter that refuses calls past the budget."""

    def __init__(self, budget: int):
        self.budget = budget
        self.calls = 0

    def __call__(self, x) -> float:
        self.calls += 1
        if self.calls > self.budget:
            raise BudgetExceeded(f"more than {self.budget} evaluations")
        return rastrigin(x)


def _load(program_path: str):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _failure(reason: str, details: str = "") -> dict:
    return {"combined_score": FAILED_SCORE, "error": 1.0, "reason": reason, "details": details}


def evaluate(program_path: str) -> dict:
    """Mean best value of ``minimise`` over the fixed trials.

    Returns ``combined_score`` (``-mean_best``), ``mean_best``, ``worst_best`` and
    ``mean_distance`` (to the global minimum); a program that fails, leaves the box or
    overspends scores ``FAILED_SCORE``.
    """
    try:
        program = _load(program_path)
    except Exception as e:
        return _failure(f"could not load the program: {e}", traceback.format_exc())
    bests, distances = [], []
    for seed in TRIAL_SEEDS[:TRIALS]:
        objective = CountedObjective(BUDGET)
        try:
            x, _ = program.minimise(objective, LOWER.copy(), UPPER.copy(), BUDGET,
                                    np.random.default_rng(seed))
            x = np.asarray(x, dtype=float)
        except Exception as e:
            return _failure(f"trial {seed} raised {type(e).__name__}: {e}", traceback.format_exc())
        if x.shape != (DIM,) or not np.all(np.isfinite(x)):
            return _failure(f"trial {seed} returned {x!r}, not a finite point of shape ({DIM},)")
        if np.any(x < LOWER) or np.any(x > UPPER):
            return _failure(f"trial {seed} left the box: {x}")
        bests.append(rastrigin(x))
        distances.append(float(np.linalg.norm(x - SHIFT)))
    mean_best = float(np.mean(bests))
    return {"combined_score": -mean_best, "mean_best": mean_best, "worst_best": max(bests),
            "mean_distance": float(np.mean(distances))}
