"""Evaluator for mlp_digits (OpenEvolve layout): validation accuracy of the program's MLP.

Data: scikit-learn's bundled 8x8 digits (1797 images, 10 classes), read from the CSV that
ships inside the installed package (sklearn itself is not imported: it is slow to import),
pixels scaled to [0, 1], split once by a fixed permutation into 1200 training and 597
validation images. Training gets a fixed generator (``TRAIN_SEED``) and a compute budget of
``MAX_UPDATES`` updates and ``MAX_WORK`` row-times-hidden-unit products, whichever runs out
first, so an evaluation takes well under a second anywhere in the space and the score is
deterministic (``EVO_SEED`` is ignored; BLAS runs on one thread).
``combined_score`` = validation accuracy (maximised).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one BLAS thread: faster for these sizes, and bitwise repeatable

import gzip  # noqa: E402
import importlib.util  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SPLIT_SEED = 0
TRAIN_SEED = 1
N_TRAIN = 1200
MAX_UPDATES = 1000
MAX_WORK = 3_000_000
"""Budget in (examples in a batch) x (hidden units), summed over updates: 39 epochs at 64."""


class Budget:
    """Compute the training may spend; ``spend`` is False once an update would exceed it."""

    def __init__(self, max_updates: int, max_work: int):
        self.max_updates, self.max_work = max_updates, max_work
        self.updates, self.work = 0, 0

    def spend(self, rows: int, width: int) -> bool:
        if self.updates + 1 > self.max_updates or self.work + rows * width > self.max_work:
            return False
        self.updates += 1
        self.work += rows * width
        return True


def _digits() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-learn is not installed: its bundled digits data is needed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1] / 16.0, data[:, -1].astype(int)


def _load(program_path: str):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(program_path: str) -> dict:
    """Train the program's model on the fixed split and score it on the validation images.

    Returns ``combined_score`` (validation accuracy), ``train_accuracy``, ``updates`` and
    ``work``; a program that fails or predicts something else than one label per image
    scores 0.
    """
    x, y = _digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    train, val = order[:N_TRAIN], order[N_TRAIN:]
    budget = Budget(MAX_UPDATES, MAX_WORK)
    try:
        program = _load(program_path)
        with np.errstate(all="ignore"):  # a diverging run yields NaN weights, scored as such
            params = program.train(x[train], y[train], 10, np.random.default_rng(TRAIN_SEED),
                                   budget)
            pred_val = np.asarray(program.predict(params, x[val]))
            pred_train = np.asarray(program.predict(params, x[train]))
    except Exception as e:
        return {"combined_score": 0.0, "error": 1.0, "reason": f"{type(e).__name__}: {e}",
                "details": traceback.format_exc()}
    if pred_val.shape != (len(val),) or pred_train.shape != (len(train),):
        return {"combined_score": 0.0, "error": 1.0,
                "reason": f"predict returned shape {pred_val.shape}, not ({len(val)},)"}
    return {"combined_score": float(np.mean(pred_val == y[val])),
            "train_accuracy": float(np.mean(pred_train == y[train])),
            "updates": float(budget.updates), "work": float(budget.work)}
