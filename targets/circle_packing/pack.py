"""Pack 26 circles in the unit square to maximise the sum of their radii (the evolving file).

The constructor places a centre circle, an inner ring and an outer ring, gives every circle the
largest radius that keeps the packing valid, then hill-climbs the centres for a while. The
trusted ``harness.py`` calls :func:`construct`, verifies the packing and writes the score.
"""

import math

import numpy as np

N_CIRCLES = 26


# evo: region=radii
def max_radii(centers):
    """Largest radii for fixed centres: start at the wall distance, shrink overlapping pairs."""
    n = len(centers)
    radii = np.minimum.reduce([centers[:, 0], centers[:, 1], 1 - centers[:, 0], 1 - centers[:, 1]])
    radii = np.maximum(radii, 0.0)
    dist = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1))
    for i in range(n):
        for j in range(i + 1, n):
            if radii[i] + radii[j] > dist[i, j]:
                scale = dist[i, j] / (radii[i] + radii[j])
                radii[i] *= scale
                radii[j] *= scale
    return radii * (1 - 1e-9)  # stay clear of the verifier's tolerance


# evo: region=layout
def ring(count, radius, phase):
    """``count`` points evenly spaced on a circle around the square's centre."""
    angles = phase + 2 * math.pi * np.arange(count) / count
    return 0.5 + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


# evo: region=layout
def initial_centers():
    """A centre circle, an inner ring and an outer ring holding the remaining circles."""
    inner = int(INNER_COUNT)
    outer = N_CIRCLES - 1 - inner
    centers = np.concatenate([
        np.array([[0.5, 0.5]]),
        ring(inner, INNER_RADIUS, INNER_PHASE),
        ring(outer, OUTER_RADIUS, OUTER_PHASE),
    ])
    return np.clip(centers, MARGIN, 1 - MARGIN)


# evo: region=search
def hill_climb(centers, rng):
    """Move one centre at a time by a random step; keep the move when the sum of radii grows."""
    best = max_radii(centers).sum()
    step = STEP_SIZE
    for _ in range(int(HILL_STEPS)):
        i = rng.integers(len(centers))
        trial = centers.copy()
        trial[i] = np.clip(trial[i] + rng.normal(0.0, step, 2), MARGIN, 1 - MARGIN)
        score = max_radii(trial).sum()
        if score > best:
            centers, best = trial, score
        step *= STEP_DECAY
    return centers


# evo: region=constants
INNER_COUNT = 6  # circles in the inner ring; the outer ring holds the rest
INNER_RADIUS = 0.2  # distance of the inner ring from the square's centre
INNER_PHASE = 0.0  # rotation of the inner ring (radians)
OUTER_RADIUS = 0.38  # distance of the outer ring from the square's centre
OUTER_PHASE = 0.0  # rotation of the outer ring (radians)
MARGIN = 0.02  # centres are kept at least this far from the walls
HILL_STEPS = 400  # random single-circle moves tried
STEP_SIZE = 0.03  # std of the first move
STEP_DECAY = 0.99  # multiplies the step size after every move


def construct(seed=0):
    """Return ``(centers, radii)``: arrays of shape (26, 2) and (26,)."""
    rng = np.random.default_rng(seed)
    centers = hill_climb(initial_centers(), rng)
    return centers, max_radii(centers)
