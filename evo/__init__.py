"""evo: evolutionary code search for ML training scripts.

The public API for scripts and notebooks::

    import evo
    summary = evo.run(target="circle_packing", evaluations=20)
    store = evo.open_run("runs/circle_packing")   # a read-only snapshot, safe while a run writes
"""

from __future__ import annotations

from pathlib import Path

from evo.api import run
from evo.config import ConfigError, load_config
from evo.loop import RunError, Search
from evo.rundir import RunSummary
from evo.target import Target, TargetError, load_target

__version__ = "0.1.0"


def open_run(run_dir: str | Path):
    """A read-only snapshot of a run dir (never takes the lock; works while a run writes)."""
    from archive import RunStore

    return RunStore.read(Path(run_dir))


__all__ = [
    "ConfigError",
    "RunError",
    "RunSummary",
    "Search",
    "Target",
    "TargetError",
    "load_config",
    "load_target",
    "open_run",
    "run",
    "__version__",
]
