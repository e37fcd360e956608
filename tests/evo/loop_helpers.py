"""Shared by the loop tests: copies of the noisy_quadratic fixture, run as real subprocesses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import evo
from archive import RunStore

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "noisy_quadratic"
REPO = Path(__file__).resolve().parents[2]


def quadratic_target(
    tmp: Path, *, start: tuple[float, float, float, float] | None = None, log: bool = False
) -> Path:
    """A copy of noisy_quadratic; ``start`` moves the seed's constants, ``log`` makes the
    harness append one line per evaluation to ``$BOWL_LOG``."""
    dst = tmp / "target"
    shutil.copytree(FIXTURE, dst)
    if start is not None:
        src = (dst / "bowl.py").read_text()
        for name, value in zip("XYZW", start, strict=True):
            src = re.sub(rf"^{name} = [-0-9.]+", f"{name} = {value!r}", src, flags=re.M)
        (dst / "bowl.py").write_text(src)
    if log:
        m = (dst / "measure.py").read_text()
        m += (
            "\nwith open(os.environ['BOWL_LOG'], 'a') as f:\n"
            "    f.write(f\"{x!r},{y!r},{z!r},{w!r},{os.environ['EVO_SEED']}\\n\")\n"
        )
        (dst / "measure.py").write_text(m)
    return dst


def write_config(path: Path, target: Path, run_dir: Path, **run: object) -> Path:
    lines = [
        "[run]",
        f'target = "{target}"',
        f'run_dir = "{run_dir}"',
        'pass_env = ["BOWL_SLEEP", "BOWL_LOG"]',
    ]
    lines += [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in run.items()]
    lines += ["[backend]", "workers = 2"]
    path.write_text("\n".join(lines) + "\n")
    return path


def search_config(
    target: str | Path, run_dir: Path, evaluations: int, *, workers: int = 2, **sections: dict
) -> dict:
    """A validated config for ``evo.Search``; ``sections`` set keys per section, e.g.
    ``noise={"seeds": 1}``."""
    overrides = {
        "run.target": str(target),
        "run.run_dir": str(run_dir),
        "run.evaluations": evaluations,
        "backend.workers": workers,
    }
    overrides.update({f"{s}.{k}": v for s, table in sections.items() for k, v in table.items()})
    return evo.load_config(None, overrides)


def evo_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "evo.cli", *args]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


def run_evo(*args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        evo_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env(**extra), cwd=REPO
    )


def runs_in_store(run_dir: Path) -> list[tuple[str, int]]:
    store = RunStore.read(run_dir)
    return [(p.id, r.seed) for p in store.programs.values() for r in p.runs]
