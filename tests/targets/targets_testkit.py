"""Run a target's seed (or an edited copy of it) the way the evaluator does.

Copies the evolving file and the read-only harness files into a fresh directory, sets
EVO_RESULT, EVO_SEED, EVO_FIDELITY, EVO_THREADS and the fidelity's env, runs the target's
command there with its timeout (inside evo's bubblewrap sandbox when it works here, as a run
does) and returns the process and the parsed result JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from evo.target import Target
from tests.evo.evaluator_helpers import sandbox_for_tests

TARGETS = Path(__file__).resolve().parents[2] / "targets"


def run_target(
    target: Target,
    workdir: Path,
    *,
    fidelity: str | None = None,
    seed: int = 0,
    source: str | None = None,
) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    """Run ``target`` (with ``source`` in place of its seed, when given) in ``workdir``."""
    fid = target.fidelity(fidelity)
    workdir.mkdir(parents=True, exist_ok=True)
    child = workdir / Path(target.evolve).name
    child.write_text(source if source is not None else target.seed_source(), encoding="utf-8")
    for path in target.harness_paths():
        dest = workdir / path.name
        shutil.copyfile(path, dest)
        dest.chmod(0o444)  # harness files are read-only in a child's directory
    result_path = workdir / "result.json"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # a target must run without evo importable
    env.update(
        {
            "EVO_RESULT": str(result_path),
            "EVO_SEED": str(seed),
            "EVO_FIDELITY": fid.name,
            "EVO_THREADS": "1",
            "EVO_DEVICE": "cpu",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
    )
    env.update(fid.env)
    argv = target.argv(fid)
    box = sandbox_for_tests()
    if box is not None:
        argv = box.wrap(argv, workdir=workdir, env=env)
    proc = subprocess.run(
        argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=fid.timeout
    )
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    return proc, result
