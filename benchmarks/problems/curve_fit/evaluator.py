"""Evaluator for curve_fit (OpenEvolve layout): score ``predict(t)`` against fixed decay data.

The data are 81 readings on ``t = 0, 0.1, ..., 8`` of a hidden bi-exponential
(amplitudes 2.0 and 1.5, time constants 0.9 and 2.6, baseline 0.3) with Gaussian measurement
noise of standard deviation 0.003 drawn from a fixed seed, so every evaluation sees the same
data and the score is deterministic (``EVO_SEED`` is ignored). The fit is scored as
``combined_score = -log10(rmse)``: smooth, monotone in the error, about 2.6 at the best fit
(the noise floor) and near 0 for a curve that is off by about 1 everywhere.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one BLAS thread: faster for these sizes, and bitwise repeatable

import importlib.util  # noqa: E402
import math  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

TIMES = np.linspace(0.0, 8.0, 81)
_HIDDEN = (2.0, 0.9, 1.5, 2.6, 0.3)  # amp_fast, tau_fast, amp_slow, tau_slow, offset
NOISE_STD = 0.003
DATA_SEED = 20240611
SCORE_FLOOR = -5.0
"""Score of a program that fails or predicts nonsense (an rmse of 1e5)."""


def _data() -> np.ndarray:
    a1, t1, a2, t2, c = _HIDDEN
    clean = a1 * np.exp(-TIMES / t1) + a2 * np.exp(-TIMES / t2) + c
    return clean + np.random.default_rng(DATA_SEED).normal(0.0, NOISE_STD, TIMES.size)


def _load(program_path: str):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(program_path: str) -> dict:
    """Fit quality of the program's ``predict`` on the fixed data.

    Returns ``combined_score`` (``-log10(rmse)``, maximised), ``rmse`` and ``max_abs_error``;
    a program that fails or returns a wrong shape or non-finite values scores ``SCORE_FLOOR``.
    """
    try:
        program = _load(program_path)
        pred = np.asarray(program.predict(TIMES.copy()), dtype=float)
    except Exception as e:
        return {"combined_score": SCORE_FLOOR, "error": 1.0, "reason": f"{type(e).__name__}: {e}",
                "details": traceback.format_exc()}
    if pred.shape != TIMES.shape or not np.all(np.isfinite(pred)):
        return {"combined_score": SCORE_FLOOR, "error": 1.0,
                "reason": f"predict returned shape {pred.shape} or non-finite values"}
    resid = pred - _data()
    rmse = float(np.sqrt(np.mean(resid**2)))
    score = max(SCORE_FLOOR, -math.log10(max(rmse, 1e-12)))
    return {"combined_score": score, "rmse": rmse, "max_abs_error": float(np.max(np.abs(resid)))}
