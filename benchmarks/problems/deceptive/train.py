"""Hyperparameters of a small classifier's training run (the run itself is simulated).

This is the evolving file of the ``deceptive`` benchmark. A real run would train an MLP of
hidden width ``WIDTH`` with AdamW, a linear warm-up of ``WARMUP`` steps to ``LR`` and dropout
``DROPOUT``; to keep an evaluation in the tens of milliseconds, the trusted harness
``measure.py`` replaces the run by a documented synthetic response surface of these four
constants (see its docstring) and reports ``val_acc`` and the descriptor ``log2_width``.
"""

# evo: region=constants
WIDTH = 32     # hidden width of the MLP (a power of two)
LR = 0.003     # peak learning rate of AdamW
WARMUP = 500   # linear warm-up steps before the peak learning rate
DROPOUT = 0.2  # dropout probability on the hidden layer


def config():
    """The run's configuration, as the harness reads it."""
    return {"width": WIDTH, "lr": LR, "warmup": WARMUP, "dropout": DROPOUT}
