"""What a run keeps beside its store: the summary, counters, log file (small JSON helpers)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("evo")


@dataclass
class RunSummary:
    """What a run did, for the CLI's closing table and for scripts."""

    run_dir: Path
    evaluations: int
    by_status: dict[str, int]
    seed_fitness: float | None
    noise_floor: float
    best_id: str | None
    best_fitness: float | None
    best_std: float | None
    improved: bool
    elites: int
    coverage: float
    qd_score: float
    gate_rejected: int
    gate_reevaluated: int
    stopped: str
    operators: dict[str, dict[str, int]] = field(default_factory=dict)
    direction: str = "minimize"
    metric: str = ""
    fidelity: str = ""




def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; {} when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    d = dict(summary.__dict__)
    d["run_dir"] = str(summary.run_dir)
    return d


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


class FileLog:
    """Attach the run's log file to the ``evo`` logger for the duration of a run."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(path)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self.handler)
        log.setLevel(logging.INFO)

    def close(self) -> None:
        log.removeHandler(self.handler)
        self.handler.close()


def report_fidelity(store: Any) -> str:
    """The level a run's results are reported at: the highest level of its cascade that a
    program other than the seed reached ok (the run's fidelity without a cascade)."""
    levels = store.meta.get("levels") or [store.meta.get("fidelity")]
    seed_id = store.meta.get("seed_id")
    for level in reversed(levels):
        if any(p.fidelity == level and p.ok and p.id != seed_id for p in store.programs.values()):
            return level
    return levels[0]
