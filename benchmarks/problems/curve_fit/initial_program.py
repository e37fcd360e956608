"""Fit a two-compartment decay curve: a sum of two exponentials plus a baseline.

The model is the usual bi-exponential of pharmacokinetics and fluorescence lifetimes,
``y(t) = AMP_FAST * exp(-t / TAU_FAST) + AMP_SLOW * exp(-t / TAU_SLOW) + OFFSET``. Its five
parameters are the constants below; the evaluator scores ``predict(t)`` against fixed measured
data. Amplitudes and time constants trade off against each other (a faster, larger fast term
looks much like a slower, smaller one), so the good region is a long, narrow valley.
"""

import numpy as np

# EVOLVE-BLOCK-START
AMP_FAST = 0.5   # amplitude of the fast component
TAU_FAST = 0.2   # time constant of the fast component (seconds)
AMP_SLOW = 0.5   # amplitude of the slow component
TAU_SLOW = 20.0  # time constant of the slow component (seconds)
OFFSET = 1.0     # baseline the curve decays to
# EVOLVE-BLOCK-END


def predict(t):
    """Model prediction at times ``t`` (an array of seconds)."""
    t = np.asarray(t, dtype=float)
    fast = AMP_FAST * np.exp(-t / TAU_FAST)
    slow = AMP_SLOW * np.exp(-t / TAU_SLOW)
    return fast + slow + OFFSET


if __name__ == "__main__":
    grid = np.linspace(0.0, 8.0, 5)
    print(" ".join(f"{v:.4f}" for v in predict(grid)))
