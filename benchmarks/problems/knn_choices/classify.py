"""k-nearest-neighbours classification with a nearest-centroid prior, in plain numpy.

``predict(x_train, y_train, x_test)`` scales the features (statistics from the training rows
only), finds each test row's ``K`` nearest training rows under ``METRIC``, and lets them vote,
by count or, with ``DISTANCE_WEIGHTED``, by ``1 / distance ** WEIGHT_POWER``. The vote shares
are mixed with nearest-centroid evidence (inverse distances to the class means, normalised)
in the proportion ``CENTROID_WEIGHT``; the class with the highest mixed score wins.
"""

import numpy as np

# evo: region=constants
SCALING = "none"           # feature scaling: none, standard, minmax or robust
METRIC = "euclidean"       # distance: euclidean, manhattan, cosine or chebyshev
DISTANCE_WEIGHTED = False  # weight votes by inverse distance instead of counting them
K = 15                     # neighbours that vote
WEIGHT_POWER = 1.0         # exponent of the inverse-distance vote weights
CENTROID_WEIGHT = 0.1      # share of nearest-centroid evidence in the final score

_TINY = np.finfo(float).eps  # guards divisions by zero


def scaler(x_train):
    """``(shift, scale)`` of the chosen scaling, fitted on the training rows."""
    if SCALING == "standard":
        return x_train.mean(axis=0), x_train.std(axis=0)
    if SCALING == "minmax":
        low = x_train.min(axis=0)
        return low, x_train.max(axis=0) - low
    if SCALING == "robust":
        q1, median, q3 = np.percentile(x_train, [25, 50, 75], axis=0)
        return median, q3 - q1
    if SCALING == "none":
        return np.zeros(x_train.shape[1]), np.ones(x_train.shape[1])
    raise ValueError(f"unknown SCALING {SCALING!r}")


def distances(a, b):
    """Pairwise distances between the rows of ``a`` and of ``b``, shape ``(len(a), len(b))``."""
    if METRIC == "euclidean":
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return np.sqrt(np.maximum(sq, 0))
    if METRIC == "manhattan":
        return np.abs(a[:, None, :] - b[None, :, :]).sum(axis=2)
    if METRIC == "chebyshev":
        return np.abs(a[:, None, :] - b[None, :, :]).max(axis=2)
    if METRIC == "cosine":
        na = a / (np.linalg.norm(a, axis=1, keepdims=True) + _TINY)
        nb = b / (np.linalg.norm(b, axis=1, keepdims=True) + _TINY)
        return np.maximum(1 - na @ nb.T, 0)
    raise ValueError(f"unknown METRIC {METRIC!r}")


def predict(x_train, y_train, x_test):
    """Predicted label of each test row."""
    shift, scale = scaler(x_train)
    scale = np.where(scale > 0, scale, 1)
    train = (x_train - shift) / scale
    test = (x_test - shift) / scale
    classes = np.unique(y_train)
    k = int(min(max(K, 1), len(train)))
    d = distances(test, train)
    nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
    near_d = np.take_along_axis(d, nearest, axis=1)
    weights = 1 / (near_d + _TINY) ** WEIGHT_POWER if DISTANCE_WEIGHTED else np.ones_like(near_d)
    votes = np.stack([(weights * (y_train[nearest] == c)).sum(1) for c in classes], axis=1)
    votes /= votes.sum(axis=1, keepdims=True)
    centroids = np.stack([train[y_train == c].mean(axis=0) for c in classes])
    closeness = 1 / (distances(test, centroids) + _TINY)
    closeness /= closeness.sum(axis=1, keepdims=True)
    score = (1 - CENTROID_WEIGHT) * votes + CENTROID_WEIGHT * closeness
    return classes[score.argmax(axis=1)]
