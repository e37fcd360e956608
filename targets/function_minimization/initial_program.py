"""Find the global minimum of a bumpy 2-D function (an OpenEvolve-layout program).

Only the code between the EVOLVE-BLOCK markers evolves; ``objective`` and ``run_search`` below
it are fixed. The evaluator seeds numpy's global RNG before each call of ``run_search()``.
"""

import numpy as np


# EVOLVE-BLOCK-START
def search_algorithm(iterations=1000, bounds=(-5.0, 5.0)):
    """Pure random search: sample points uniformly, keep the best one seen.

    Args:
        iterations: how many points to sample after the first.
        bounds: the search box, the same for x and y.

    Returns:
        ``(x, y, value)`` of the best point found.
    """
    low, high = bounds
    best_x, best_y = np.random.uniform(low, high, size=2)
    best_value = objective(best_x, best_y)
    for _ in range(iterations):
        x, y = np.random.uniform(low, high, size=2)
        value = objective(x, y)
        if value < best_value:
            best_x, best_y, best_value = x, y, value
    return best_x, best_y, best_value


# EVOLVE-BLOCK-END


def objective(x, y):
    """A shallow bowl with ripples: several local minima, one global minimum in [-5, 5]^2."""
    return 0.05 * (x**2 + y**2) + np.sin(2 * x + 1) * np.cos(1.5 * y) + 0.3 * np.sin(x * y)


def run_search():
    """Entry point the evaluator calls: returns ``(x, y, value)``."""
    return search_algorithm()


if __name__ == "__main__":
    x, y, value = run_search()
    print(f"minimum near ({x:.4f}, {y:.4f}) with value {value:.6f}")
