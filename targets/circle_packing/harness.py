"""Trusted harness for circle packing: run ``pack.construct``, verify strictly, write the score.

The packing is valid when there are exactly 26 circles, every number is finite, every radius is
> 0, every circle lies inside the unit square and no two circles overlap, each up to ``TOL``
(1e-12, far below the problem's 1e-9 and in the conservative direction: a packing is never
credited with more room than it has). A valid packing scores ``sum_radii`` (maximised; the best
known value is 2.635983); an invalid one writes ``{"status": "invalid_result", "reason": ...}``.
``pack`` runs in a child interpreter; verification runs here, in plain Python floats, so the
evolving file can neither patch the verifier nor write the result itself.

Environment: ``EVO_RESULT`` (where the JSON goes; printed only when unset), ``EVO_SEED``
(passed to ``construct(seed)``). Runs without evo installed: ``python harness.py``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

N_CIRCLES = 26
BEST_KNOWN = 2.635983
TOL = 1e-12


class InvalidPacking(ValueError):
    """The constructor's output breaks a rule; the message says which circle and how."""


def _floats(value: Any, name: str) -> list:
    """``value`` as nested lists of Python floats (any array-like), or InvalidPacking."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_floats(v, name) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPacking(f"{name} holds {type(value).__name__} {value!r}, not a number")
    return float(value)


def verify(centers: Any, radii: Any) -> dict[str, float]:
    """Check a packing; return its metrics or raise :class:`InvalidPacking`."""
    cs = _floats(centers, "centers")
    rs = _floats(radii, "radii")
    if len(cs) != N_CIRCLES or len(rs) != N_CIRCLES:
        raise InvalidPacking(f"need exactly {N_CIRCLES} centers and radii, got {len(cs)} and "
                             f"{len(rs)}")
    for i, (c, r) in enumerate(zip(cs, rs, strict=True)):
        if not isinstance(c, list) or len(c) != 2:
            raise InvalidPacking(f"center {i} is {c!r}, not an (x, y) pair")
        if isinstance(r, list):
            raise InvalidPacking(f"radius {i} is {r!r}, not a number")
        x, y = c
        if not all(math.isfinite(v) for v in (x, y, r)):
            raise InvalidPacking(f"circle {i} has a non-finite value: ({x}, {y}), r={r}")
        if r <= 0:
            raise InvalidPacking(f"circle {i} has radius {r} <= 0")
        if min(x - r, y - r, 1 - x - r, 1 - y - r) < -TOL:
            raise InvalidPacking(f"circle {i} at ({x:.6g}, {y:.6g}) r={r:.6g} leaves the square")
    min_gap = math.inf
    for i in range(N_CIRCLES):
        (xi, yi), ri = cs[i], rs[i]
        for j in range(i + 1, N_CIRCLES):
            (xj, yj), rj = cs[j], rs[j]
            gap = math.hypot(xi - xj, yi - yj) - (ri + rj)
            if gap < -TOL:
                raise InvalidPacking(f"circles {i} and {j} overlap by {-gap:.3g}")
            min_gap = min(min_gap, gap)
    total = math.fsum(rs)
    return {"sum_radii": total, "valid": 1, "n_circles": N_CIRCLES,
            "ratio_to_best": total / BEST_KNOWN, "min_gap": min_gap,
            "min_radius": min(rs), "max_radius": max(rs)}


def _write(result: dict[str, Any]) -> None:
    target = os.environ.get("EVO_RESULT", "")
    print(json.dumps(result))
    if not target:
        return
    path = Path(target)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".result.")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)


_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
start = time.perf_counter()
import pack
out = pack.construct(int(sys.argv[2]))
seconds = time.perf_counter() - start
def plain(v):
    v = v.tolist() if hasattr(v, "tolist") else v
    return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v
with open(sys.argv[3], "w") as f:
    json.dump({"out": plain(out), "seconds": seconds}, f)
"""


def main() -> int:
    """Construct in a child process, verify here, write the result.

    ``pack`` runs in its own interpreter without ``EVO_RESULT``, so it can neither patch this
    verifier nor write the result file. Returns the child's exit status when construction
    failed (its traceback is on stderr), else 0.
    """
    seed = int(os.environ.get("EVO_SEED", "0") or 0)
    here = str(Path(__file__).resolve().parent)
    env = {k: v for k, v in os.environ.items() if k != "EVO_RESULT"}
    with tempfile.TemporaryDirectory(prefix="pack.") as tmp:
        out_path = Path(tmp) / "out.json"
        proc = subprocess.run([sys.executable, "-c", _CHILD, here, str(seed), str(out_path)],
                              env=env, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            print(f"harness: pack.construct failed with exit status {proc.returncode}",
                  file=sys.stderr)
            return proc.returncode if proc.returncode > 0 else 1
        try:
            data = json.loads(out_path.read_text())
        except (OSError, ValueError) as e:
            _write({"status": "invalid_result", "reason": f"construct() output unreadable: {e}"})
            return 0
    try:
        out = data.get("out") if isinstance(data, dict) else None
        if not isinstance(out, list) or len(out) != 2:
            raise InvalidPacking("construct() must return (centers, radii)")
        result = verify(*out)
    except InvalidPacking as e:
        _write({"status": "invalid_result", "reason": str(e)})
        return 0
    result["construct_seconds"] = round(float(data.get("seconds", 0.0)), 4)
    _write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
