"""A one-hidden-layer ReLU network for handwritten digits, trained with SGD and momentum.

``train(x, y, n_classes, rng, budget)`` initialises the weights (He-style normal, times
``INIT_SCALE``), then runs ``EPOCHS`` epochs of shuffled mini-batches of ``BATCH_SIZE``,
minimising softmax cross-entropy plus ``L2`` weight decay with heavy-ball momentum
``MOMENTUM`` at a constant ``LEARNING_RATE``. It stops early when the harness's compute
budget is spent. ``predict(params, x)`` returns class indices.
"""

import numpy as np

# EVOLVE-BLOCK-START
LEARNING_RATE = 0.05  # SGD step size
EPOCHS = 3            # passes over the training set
HIDDEN = 32           # hidden units
L2 = 0.0001           # weight decay coefficient
BATCH_SIZE = 64       # examples per update
INIT_SCALE = 1.0      # multiplier of the He-normal initial weights
MOMENTUM = 0.5        # heavy-ball momentum coefficient
# EVOLVE-BLOCK-END


def init(n_in, n_hidden, n_out, rng):
    """Initial weights and biases."""
    return [
        rng.standard_normal((n_in, n_hidden)) * INIT_SCALE * np.sqrt(2.0 / n_in),
        np.zeros(n_hidden),
        rng.standard_normal((n_hidden, n_out)) * INIT_SCALE * np.sqrt(2.0 / n_hidden),
        np.zeros(n_out),
    ]


def forward(params, x):
    """Hidden pre-activations and output logits."""
    w1, b1, w2, b2 = params
    z = x @ w1 + b1
    return z, np.maximum(z, 0) @ w2 + b2


def gradients(params, x, onehot):
    """Gradients of mean cross-entropy plus the L2 penalty."""
    w1, b1, w2, b2 = params
    z, logits = forward(params, x)
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    d_logits = (probs - onehot) / len(x)
    hidden = np.maximum(z, 0)
    d_z = (d_logits @ w2.T) * (z > 0)
    return [
        x.T @ d_z + L2 * w1,
        d_z.sum(axis=0),
        hidden.T @ d_logits + L2 * w2,
        d_logits.sum(axis=0),
    ]


def train(x, y, n_classes, rng, budget):
    """Trained parameters; ``budget.spend(rows, width)`` is False once compute runs out."""
    params = init(x.shape[1], int(HIDDEN), n_classes, rng)
    velocity = [np.zeros_like(p) for p in params]
    onehot = np.eye(n_classes)[y]
    batch = max(1, int(BATCH_SIZE))
    for _ in range(int(EPOCHS)):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            if not budget.spend(len(idx), int(HIDDEN)):
                return params
            grads = gradients(params, x[idx], onehot[idx])
            for p, v, g in zip(params, velocity, grads, strict=True):
                v *= MOMENTUM
                v -= LEARNING_RATE * g
                p += v
    return params


def predict(params, x):
    """Predicted class of each row of ``x``."""
    return forward(params, x)[1].argmax(axis=1)
