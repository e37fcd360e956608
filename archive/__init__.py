"""archive: Program records, niches and elites (pyribs), parent selection, the run's store.

The public surface is re-exported here; the modules behind it are private to the package.
"""

from archive.checkpoint import SCHEMA_VERSION, HistoryRow
from archive.dims import Dim
from archive.elites import AddResult, ArchiveStats, CellElite, EliteArchive
from archive.errors import LockError, StoreError
from archive.noise import (
    TIMING_METRIC,
    NoiseEstimate,
    NoisePool,
    estimate_noise,
    remeasurement_runs,
)
from archive.program import (
    FAILED,
    GATED_REASONS,
    NOT_PLACED,
    PENDING,
    REMEASURE_REASONS,
    STATUSES,
    Program,
    SeedRun,
    failure_reasons,
    noise_floor,
    placement_notes,
)
from archive.selection import EXPLOIT, STRATEGIES, select_parents
from archive.store import RunStore

__all__ = [
    "EXPLOIT",
    "FAILED",
    "GATED_REASONS",
    "NOT_PLACED",
    "PENDING",
    "REMEASURE_REASONS",
    "SCHEMA_VERSION",
    "STATUSES",
    "STRATEGIES",
    "AddResult",
    "ArchiveStats",
    "CellElite",
    "Dim",
    "EliteArchive",
    "HistoryRow",
    "LockError",
    "NoiseEstimate",
    "NoisePool",
    "Program",
    "RunStore",
    "SeedRun",
    "StoreError",
    "TIMING_METRIC",
    "estimate_noise",
    "failure_reasons",
    "noise_floor",
    "placement_notes",
    "remeasurement_runs",
    "select_parents",
]
