"""Robust radial-basis-function regression: ridge on Gaussian bumps, refit with Huber weights.

``fit(x, y)`` places ``N_CENTERS`` Gaussian bumps of width ``BANDWIDTH`` evenly over the
input range, solves the ridge problem (penalty ``RIDGE`` per sample), then refits three times
with Huber weights that down-weight points whose residual exceeds ``OUTLIER_CLIP`` robust
standard deviations (the training targets hold a few gross outliers). The evaluator scores
``predict`` on a held-out validation set; like a training run, that score varies with the
evaluation's random seed.
"""

import numpy as np

# EVOLVE-BLOCK-START
N_CENTERS = 12       # Gaussian basis functions spread evenly over the input range
BANDWIDTH = 0.1      # width of each basis function, in input units
RIDGE = 1e-6         # ridge penalty per training sample
OUTLIER_CLIP = 50.0  # Huber threshold, in robust standard deviations of the residuals
# EVOLVE-BLOCK-END

X_RANGE = (-3.0, 3.0)
REFITS = 3
Z2_CAP = 600.0


def features(x):
    """Design matrix: one Gaussian bump per centre, shape ``(len(x), N_CENTERS)``."""
    centres = np.linspace(X_RANGE[0], X_RANGE[1], int(N_CENTERS))
    z2 = ((np.asarray(x)[:, None] - centres[None, :]) / BANDWIDTH) ** 2
    # the floor exp(-300) keeps products of features clear of slow subnormal numbers
    return np.exp(-0.5 * np.minimum(z2, Z2_CAP))


def _weighted_ridge(phi, y, weights):
    gram = phi.T @ (weights[:, None] * phi) + RIDGE * len(y) * np.eye(phi.shape[1])
    return np.linalg.solve(gram, phi.T @ (weights * y))


def fit(x, y):
    """Coefficients of the robust ridge fit of ``y`` on ``features(x)``."""
    phi = features(x)
    coef = _weighted_ridge(phi, y, np.ones(len(y)))
    for _ in range(REFITS):
        resid = y - phi @ coef
        scale = 1.4826 * np.median(np.abs(resid - np.median(resid))) + 1e-12
        excess = np.abs(resid) / (OUTLIER_CLIP * scale)
        coef = _weighted_ridge(phi, y, np.where(excess <= 1, 1.0, 1.0 / np.maximum(excess, 1)))
    return coef


def predict(coef, x):
    """Predictions of the fitted model at ``x``."""
    return features(x) @ coef
