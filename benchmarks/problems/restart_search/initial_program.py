"""Restarted stochastic local search (simulated annealing with restarts) for a box-bounded minimum.

``minimise(objective, lower, upper, budget, rng)`` splits its budget of function evaluations
over ``N_RESTARTS`` independent climbs. Each climb starts at a random point near the centre of
the box, takes Gaussian steps whose size shrinks geometrically from ``STEP_SIZE`` to
``STEP_SIZE * STEP_DECAY`` of the box width, and accepts a worse point with the Metropolis
probability ``exp(-increase / temperature)``, the temperature cooling linearly from
``TEMPERATURE`` to zero. The evaluator supplies the objective, the box, the budget and the
random generator.
"""

import math

import numpy as np

# EVOLVE-BLOCK-START
N_RESTARTS = 2      # independent climbs the evaluation budget is split over
STEP_SIZE = 0.02    # first step's standard deviation, as a fraction of the box width
STEP_DECAY = 0.5    # last step's size divided by the first step's
INIT_SPREAD = 0.2   # start points lie in this fraction of the box, around its centre
TEMPERATURE = 0.01  # initial annealing temperature (0 would be pure hill climbing)
# EVOLVE-BLOCK-END


def climb(objective, lower, upper, evaluations, rng):
    """One annealed climb of ``evaluations`` calls; returns ``(best_x, best_value)``."""
    dim = len(lower)
    width = upper - lower
    centre = (lower + upper) / 2
    x = np.clip(centre + INIT_SPREAD * width * (rng.random(dim) - 0.5), lower, upper)
    fx = objective(x)
    best_x, best_f = x, fx
    steps = evaluations - 1
    progress = np.arange(steps) / max(steps - 1, 1)
    step_sizes = STEP_SIZE * STEP_DECAY**progress
    temperatures = TEMPERATURE * (1 - progress)
    moves = rng.standard_normal((steps, dim)) * width
    draws = rng.random(steps)
    for i in range(steps):
        y = np.minimum(np.maximum(x + step_sizes[i] * moves[i], lower), upper)
        fy = objective(y)
        worse = fy - fx
        if worse <= 0 or (temperatures[i] > 0 and draws[i] < math.exp(-worse / temperatures[i])):
            x, fx = y, fy
            if fx < best_f:
                best_x, best_f = x, fx
    return best_x, best_f


def minimise(objective, lower, upper, budget, rng):
    """Best point found within ``budget`` calls of ``objective``: ``(x, value)``."""
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    restarts = max(1, min(int(N_RESTARTS), budget))
    best_x, best_f = None, math.inf
    for r in range(restarts):
        evaluations = budget // restarts + (1 if r < budget % restarts else 0)
        x, fx = climb(objective, lower, upper, evaluations, rng)
        if fx < best_f:
            best_x, best_f = x, fx
    return best_x, best_f
