"""Trusted harness of ``deceptive``: a synthetic response surface standing in for training.

``val_acc(width, lr, warmup, dropout)`` is a smooth, documented function, not a training run.
It mimics a familiar pattern: small models are easy to tune but saturate; large models reach
more, but only with a lower learning rate, a long warm-up and stronger dropout, all at once.
With ``w = log2(width)`` clipped to [3, 10] and the other constants mapped to [0, 1]
(``u = (log10(lr) + 4) / 4``, ``v = warmup / 2000``, ``z = dropout / 0.5``):

- small hill: ``S = (0.80 - 0.02 (w - 6)^2) * exp(-q / 2)``, ``q`` the squared distance of
  ``(u, v, z)`` to ``(0.62, 0.05, 0.10)`` (lr 0.03, warm-up 100, dropout 0.05) in units of
  ``(0.30, 0.50, 0.60)``: broad, at most 0.80 (width 64);
- large hill: ``L = (0.97 - 0.01 (w - 9)^2) * (0.4 + 0.6 / (1 + d^2))``, ``d`` the distance
  to ``(0.25, 0.45, 0.55)`` (lr 1e-3, warm-up 900, dropout 0.275) in units of
  ``(0.20, 0.12, 0.12)``: 0.97 at width 512, but about 0.40 wherever the three constants are
  not jointly near that point, and sloped everywhere (a Cauchy-shaped bump on a floor);
- ``val_acc = (1 - g) S + g L`` with ``g = 1 / (1 + exp(-6 (w - 6.5)))``: widths up to 64
  follow the small hill, widths from 128 the large one.

So a greedy search from the seed (width 32) climbs the small hill to about 0.79, and every
one- or two-constant step from there to a large width scores about 0.40; only a search that
keeps a large-width program alive and tunes it escapes. ``EVO_SEED`` is ignored (the surface
is deterministic). The result also holds ``log2_width``, the archive's niche descriptor.
"""

import json
import math
import os

import train

SMALL_CENTRE = (0.62, 0.05, 0.10)
SMALL_SCALE = (0.30, 0.50, 0.60)
LARGE_CENTRE = (0.25, 0.45, 0.55)
LARGE_SCALE = (0.20, 0.12, 0.12)
LARGE_FLOOR = 0.4


def val_acc(width: float, lr: float, warmup: float, dropout: float) -> float:
    """The synthetic validation accuracy (see the module docstring)."""
    w = min(max(math.log2(width), 3.0), 10.0)
    x = ((math.log10(lr) + 4.0) / 4.0, warmup / 2000.0, dropout / 0.5)
    q = sum(((a - c) / s) ** 2 for a, c, s in zip(x, SMALL_CENTRE, SMALL_SCALE, strict=True))
    small = (0.80 - 0.02 * (w - 6.0) ** 2) * math.exp(-q / 2.0)
    d2 = sum(((a - c) / s) ** 2 for a, c, s in zip(x, LARGE_CENTRE, LARGE_SCALE, strict=True))
    large = (0.97 - 0.01 * (w - 9.0) ** 2) * (LARGE_FLOOR + (1.0 - LARGE_FLOOR) / (1.0 + d2))
    g = 1.0 / (1.0 + math.exp(-6.0 * (w - 6.5)))
    return (1.0 - g) * small + g * large


def _write(result: dict) -> None:
    path = os.environ["EVO_RESULT"]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)


def main() -> None:
    cfg = train.config()
    width, lr, warmup, dropout = cfg["width"], cfg["lr"], cfg["warmup"], cfg["dropout"]
    for name, value in cfg.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            _write({"status": "invalid_result", "reason": f"{name} = {value!r} is not a number"})
            return
    if int(width) != width or width < 1 or lr <= 0 or warmup < 0 or not 0 <= dropout < 1:
        _write({"status": "invalid_result", "reason": "need an integer width >= 1, lr > 0, "
                f"warmup >= 0 and 0 <= dropout < 1; got {cfg}"})
        return
    _write({"val_acc": val_acc(width, lr, warmup, dropout), "log2_width": math.log2(width),
            "width": width, "lr": lr, "warmup": warmup, "dropout": dropout})


if __name__ == "__main__":
    main()
