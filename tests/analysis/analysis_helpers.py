"""Helpers of the analysis tests: the CLI as a subprocess, planted variants (see conftest).

Real small runs shared by the analysis tests are made once per session by conftest.py:

- ``cp_run``: circle_packing, 30 seed runs, with a planted hand-written variant holding two
  constant edits that each improve sum_radii (STEP_SIZE 0.03 -> 0.1, STEP_DECAY 0.99 ->
  0.999), added through ``evo seed`` as a user would.
- ``quad_run``: noisy_quadratic (deterministic at its default fidelity), with two planted
  variants whose additivity is known exactly: X and Y moved to their optima (separable
  bowl: additive) and two ways of zeroing W (redundant: sub-additive).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CIRCLE = REPO / "targets" / "circle_packing"
QUAD = REPO / "tests" / "fixtures" / "noisy_quadratic"


def evo_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m evo.cli ARGS`` as a user runs it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "evo.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def substitute(source: str, **values: str) -> str:
    """``source`` with the module-level assignments ``NAME = ...`` given new values."""
    for name, value in values.items():
        source, n = re.subn(
            rf"^{name} = [^#\n]+?(\s*#|\n)", rf"{name} = {value}\1", source, count=1, flags=re.M
        )
        assert n == 1, name
    return source


@dataclass
class Planted:
    run_dir: Path
    ids: dict[str, str]  # name -> program id
