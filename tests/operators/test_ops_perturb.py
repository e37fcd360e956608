"""How single numbers move: log scale, powers of two, betas, bounds, frozen seeds."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.perturb import format_float, is_power_of_two, perturb

FAST = settings(max_examples=200, deadline=None, database=None)
SEEDS = st.integers(0, 2**32 - 1)


@FAST
@given(seed=SEEDS, k=st.integers(1, 20))
def test_powers_of_two_stay_powers_of_two(seed, k):
    new = perturb(2**k, "N_EMBD", np.random.default_rng(seed))
    assert new in (2 ** (k - 1), 2 ** (k + 1))


@FAST
@given(seed=SEEDS, v=st.integers(1, 10_000).filter(lambda v: not is_power_of_two(v)))
def test_positive_integers_stay_positive_integers(seed, v):
    new = perturb(v, "STEPS", np.random.default_rng(seed))
    assert isinstance(new, int) and new >= 1 and new != v
    assert abs(new - v) <= max(1, round(v * 0.15))


def test_one_and_zero_always_move_and_keep_their_sign():
    for s in range(300):
        assert perturb(1, "STEPS", np.random.default_rng(s)) == 2
        assert perturb(0, "WARMUP_STEPS", np.random.default_rng(s)) == 1
        assert perturb(-1, "OFFSET", np.random.default_rng(s)) == -2


@FAST
@given(seed=SEEDS, beta=st.sampled_from([0.8, 0.9, 0.95, 0.99, 0.999]))
def test_betas_move_on_the_log_scale_of_one_minus_beta(seed, beta):
    new = perturb(beta, "ADAM_BETAS[1]", np.random.default_rng(seed))
    assert 0.5 < new < 1 and new != beta
    assert 0.05 < (1 - new) / (1 - beta) < 20


@FAST
@given(seed=SEEDS, v=st.floats(1e-6, 0.99))
def test_probabilities_stay_probabilities(seed, v):
    new = perturb(v, "DROPOUT", np.random.default_rng(seed))
    assert new is None or 0 <= new < 1


@FAST
@given(seed=SEEDS, v=st.floats(1e-5, 1e3))
def test_rates_keep_their_sign_and_magnitude(seed, v):
    new = perturb(v, "LEARNING_RATE", np.random.default_rng(seed))
    assert new is None or (new > 0 and 1e-3 < new / v < 1e3)


@FAST
@given(seed=SEEDS, v=st.floats(0.01, 0.1))
def test_ranges_bound_every_result(seed, v):
    new = perturb(v, "LR", np.random.default_rng(seed), bounds=(0.01, 0.1))
    assert new is None or 0.01 <= new <= 0.1
    assert perturb(4, "DEPTH", np.random.default_rng(seed), bounds=(4, 4)) is None


def test_zero_floats_become_small_positive_values():
    news = {perturb(0.0, "WARMUP_RATIO", np.random.default_rng(s)) for s in range(50)}
    assert all(0.01 <= x <= 0.32 for x in news) and len(news) > 10


def test_probabilities_sometimes_go_back_to_zero():
    news = [perturb(0.1, "DROPOUT", np.random.default_rng(s)) for s in range(200)]
    assert 5 <= news.count(0.0) <= 40


@FAST
@given(x=st.floats(1e-12, 1e12), like=st.sampled_from(["3e-3", "0.003", "1.5E2", "2."]))
def test_float_literals_round_trip(x, like):
    text = format_float(x, like)
    assert float(text) == x and ("e" in text or "." in text or "inf" in text)
    assert not math.isnan(float(text))
