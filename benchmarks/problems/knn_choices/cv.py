"""Trusted harness of ``knn_choices``: repeated stratified cross-validation on the wine data.

Data: scikit-learn's bundled wine recognition data (178 wines, 13 chemical measurements on
very different scales, 3 cultivars), read from the CSV inside the installed package (sklearn
itself is not imported). ``REPEATS`` times 5-fold stratified cross-validation with fixed
shuffles: every evaluation uses the same 15 splits, so the score is deterministic
(``EVO_SEED`` is ignored). Result: ``accuracy`` (mean over all held-out predictions, the
fitness, maximised), ``combined_score`` (the same number), ``worst_fold``.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one BLAS thread: these matrices are tiny

import importlib.util  # noqa: E402
import json  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

FOLDS = 5
REPEATS = 3
SPLIT_SEED = 2024


def wine() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-learn is not installed: its bundled wine data is needed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "wine_data.csv"
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1].astype(int)


def folds(y: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified folds: each class shuffled and dealt round-robin over the folds."""
    out: list[list[int]] = [[] for _ in range(FOLDS)]
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        for j, i in enumerate(idx):
            out[(offset + j) % FOLDS].append(int(i))
        offset += len(idx)
    return [np.array(sorted(f)) for f in out]


def _write(result: dict) -> None:
    path = os.environ["EVO_RESULT"]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)


def main() -> None:
    x, y = wine()
    rng = np.random.default_rng(SPLIT_SEED)
    try:
        import classify

        correct, total, fold_acc = 0, 0, []
        for _ in range(REPEATS):
            for test in folds(y, rng):
                train = np.setdiff1d(np.arange(len(y)), test)
                pred = np.asarray(classify.predict(x[train].copy(), y[train].copy(),
                                                   x[test].copy()))
                if pred.shape != test.shape:
                    _write({"status": "invalid_result",
                            "reason": f"predict returned shape {pred.shape}, not {test.shape}"})
                    return
                hits = int(np.sum(pred == y[test]))
                correct, total = correct + hits, total + len(test)
                fold_acc.append(hits / len(test))
    except Exception:
        traceback.print_exc()
        raise SystemExit(1) from None
    acc = correct / total
    _write({"accuracy": acc, "combined_score": acc, "worst_fold": min(fold_acc)})


if __name__ == "__main__":
    main()
