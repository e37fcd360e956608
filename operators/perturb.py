"""How one number is perturbed: log scale for rates, integer steps for sizes, and bounds.

Rules (``name`` is the constant's name, a tuple element's ``NAME[i]``, or the keyword or
variable a literal is bound to elsewhere in the code):

- floats in [0.9, 1), and floats in [0.5, 1) whose name says beta/momentum/EMA/gamma/decay
  (Adam betas, EMA decays, shrink factors): ``1 - x`` moves on a log scale, so 0.95 becomes
  0.93 or 0.97, never 1.2 or 0.4;
- other non-zero floats: ``x * exp(N(0, s))``, ``s = 0.5`` for rates, decays, eps, std and
  other small (< 1) values, ``0.25`` otherwise; the sign never changes;
- a zero float becomes a small positive value (``10**U(-2, -0.5)``), and a probability-like
  value (dropout, fractions, ratios) goes back to 0 with probability 0.1;
- probability-like names and unnamed values in (0, 1) stay in (0, 1);
- integers: a power of two (>= 2) is doubled or halved; others move by a step of about 15%
  of their size (at least 1); positive stays positive, non-negative stays non-negative (a
  step that would cross zero goes the other way, so 1 always has somewhere to go);
- bounds from the target's ``ranges`` clamp every result; a result equal to the old value is
  drawn again (a few times) and otherwise given up (``None``);
- ``scale`` (the run's adaptive step size, 1 by default) multiplies every step: the log-normal
  sigmas and the integer step; above 1.5 a power of two may also move by several octaves
  (``max(1, round(|N(0, scale)|))``).

Results are rounded to two significant digits (of ``1 - x`` for betas) so that descriptions
and diffs stay readable: ``LEARNING_RATE: 0.003 -> 0.0047``.
"""

from __future__ import annotations

import decimal
import math
import re

import numpy as np

LOG_NAMES = re.compile(r"LR|RATE|DECAY|EPS|STD|WD|LAMBDA|TEMP|SCALE|CLIP|NOISE|ALPHA|INIT", re.I)
NEAR_ONE_NAMES = re.compile(r"BETA|MOMENTUM|EMA|GAMMA|DECAY", re.I)
PROBABILITY_NAMES = re.compile(r"DROPOUT|PROB|FRAC|RATIO|BETA|MOMENTUM|EMA", re.I)
FROZEN_NAMES = re.compile(r"(^|_)SEED$", re.I)
"""Never perturbed: changing a random seed chases noise, not improvements."""

_TRIES = 8


def round_sig(x: float, digits: int = 2) -> float:
    """``x`` rounded to ``digits`` significant digits."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def format_float(x: float, like: str = "") -> str:
    """Python literal text for float ``x``; exponent notation when ``like`` used it."""
    text = repr(float(x))
    if "e" in like.lower() and "e" not in text and x != 0 and math.isfinite(x):
        # the shortest round-trip digits of repr, moved into exponent notation
        sign, digits, exp = decimal.Decimal(text).normalize().as_tuple()
        ds = "".join(map(str, digits))
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        text = f"{'-' if sign else ''}{mant}e{exp + len(ds) - 1}"
    return text


def is_power_of_two(n: int) -> bool:
    return n >= 2 and n & (n - 1) == 0


def perturb(
    value: float | int,
    name: str,
    rng: np.random.Generator,
    bounds: tuple[float, float] | None = None,
    scale: float = 1.0,
) -> float | int | None:
    """A new value for a numeric literal; ``None`` when no different value is allowed.

    Args:
        value: the literal's current value.
        name: the constant's name (``NAME[i]`` for a tuple element), for the rules above.
        rng: the random generator.
        bounds: ``(low, high)`` from the target's ``ranges``, or None.
        scale: step-size multiplier (> 0); 1 is the default step.
    """
    for _ in range(_TRIES):
        new = (
            _draw_int(value, rng, scale)
            if isinstance(value, int)
            else _draw_float(value, name, rng, scale)
        )
        if new is None:
            continue
        new = _bound(new, value, name, bounds)
        if new is not None and new != value and (type(new) is type(value)):
            return new
    return None


def _draw_int(v: int, rng: np.random.Generator, scale: float = 1.0) -> int:
    if is_power_of_two(v):
        octaves = max(1, round(abs(rng.normal(0, scale)))) if scale > 1.5 else 1
        return v << octaves if rng.random() < 0.5 else max(1, v >> octaves)
    k = max(1, round(abs(v) * 0.15 * scale))
    step = int(rng.integers(1, k + 1)) * (1 if rng.random() < 0.5 else -1)
    new = v + step
    if (v > 0 and new < 1) or (v == 0 and new < 0) or (v < 0 and new > -1):
        new = v - step  # a step that would change the sign goes the other way
    return new


def _draw_float(v: float, name: str, rng: np.random.Generator, scale: float = 1.0) -> float | None:
    prob_like = bool(PROBABILITY_NAMES.search(name))
    if v == 0.0:
        return round_sig(10 ** rng.uniform(-2, -0.5))
    if prob_like and 0 < v < 1 and not NEAR_ONE_NAMES.search(name) and rng.random() < 0.1:
        return 0.0
    if 0.9 <= v < 1 or (NEAR_ONE_NAMES.search(name) and 0.5 <= v < 1):
        u = round_sig((1 - v) * math.exp(rng.normal(0, 0.5 * scale)))
        return round(1 - u, 12) if 0 < u < 0.5 else None
    sigma = (0.5 if (LOG_NAMES.search(name) or abs(v) < 1) else 0.25) * scale
    return round_sig(v * math.exp(rng.normal(0, sigma)))


def _bound(
    new: float | int, old: float | int, name: str, bounds: tuple[float, float] | None
) -> float | int | None:
    if isinstance(old, int):
        if old > 0:
            new = max(new, 1)
        elif old == 0:
            new = max(new, 0)
        else:
            new = min(new, -1)
    elif (PROBABILITY_NAMES.search(name) or not name) and 0 < old < 1 and not 0 <= new < 1:
        return None
    if bounds is not None:
        lo, hi = bounds
        if isinstance(old, int):
            lo, hi = math.ceil(lo), math.floor(hi)
            if lo > hi:
                return None
        new = min(max(new, lo), hi)
        if isinstance(old, int):
            new = int(new)
        else:
            new = float(new)
    return new
