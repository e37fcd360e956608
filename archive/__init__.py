"""archive: Program records, niches and elites (pyribs), parent selection, the run's store.

The public surface is re-exported here; the modules behind it are private to the package.
"""

from archive.checkpoint import SCHEMA_VERSION, HistoryRow
from archive.dims import Dim
from archive.elites import AddResult, ArchiveStats, CellElite, EliteArchive
from archive.errors import LockError, StoreError
from archive.program import FAILED, PENDING, STATUSES, Program, SeedRun, noise_floor
from archive.selection import STRATEGIES, select_parents
from archive.store import RunStore

__all__ = [
    "FAILED",
    "PENDING",
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
    "Program",
    "RunStore",
    "SeedRun",
    "StoreError",
    "noise_floor",
    "select_parents",
]
