"""A run dir loaded for analysis: a read-only store snapshot plus the files beside it.

Loading never takes the run's lock and never writes: it works while a run is writing (the
store gives a consistent snapshot) and on a finished run alike. The counters the loop keeps
beside the store (``operators.json``, ``counters.json``, ``summary.json``) are read when
present; every number that the store itself holds is taken from the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from analysis.errors import AnalysisError
from archive import PENDING, HistoryRow, Program, RunStore, StoreError


@dataclass
class RunData:
    """One run, as analysis sees it.

    Attributes:
        run_dir: the run directory.
        name: a short label for legends (the run dir's name).
        store: the read-only snapshot (``archive.RunStore.read``).
        fidelity: the fidelity analysed (the run's, from its meta).
        metric: the fitness metric's name.
        direction: ``minimize`` or ``maximize``.
        history: the store's history rows of ``fidelity``, in evaluation order.
        config: ``config.toml`` as a dict ({} when missing or unreadable).
        operators: ``operators.json`` (operator -> counter -> n), or None when missing.
        counters: ``counters.json`` (gate counters, gated ids), or None when missing.
        summary: ``summary.json`` (the RunSummary of the last finished run), or None.
    """

    run_dir: Path
    name: str
    store: RunStore
    fidelity: str
    metric: str
    direction: str
    history: list[HistoryRow]
    config: dict[str, Any] = field(default_factory=dict)
    operators: dict[str, dict[str, int]] | None = None
    counters: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def seed_id(self) -> str | None:
        return self.store.meta.get("seed_id")

    def program(self, pid: str) -> Program | None:
        """The record of ``pid`` at the analysed fidelity."""
        return self.store.programs.get((pid, self.fidelity))

    @property
    def seed(self) -> Program | None:
        """The seed program's record (None if the run never recorded it)."""
        return self.program(self.seed_id) if self.seed_id else None

    @property
    def best(self) -> Program | None:
        """The archive's best elite (None before the first ok evaluation)."""
        return self.store.best(self.fidelity)

    @cached_property  # the store is a snapshot: sorted once, not on every access
    def programs(self) -> list[Program]:
        """Every record of the analysed fidelity, pending ones included, by birth."""
        ps = [p for p in self.store.programs.values() if p.fidelity == self.fidelity]
        return sorted(ps, key=lambda p: (p.birth, p.id))

    @cached_property
    def finished(self) -> list[Program]:
        """Records whose evaluation finished (any status but pending), by birth."""
        return [p for p in self.programs if p.status != PENDING]

    def better(self, a: float, b: float) -> bool:
        """True when fitness ``a`` is strictly better than ``b``."""
        return a > b if self.maximize else a < b

    def gain(self, new: float, old: float) -> float:
        """Improvement of ``new`` over ``old`` (positive = better, in either direction)."""
        return new - old if self.maximize else old - new

    def find(self, prefix: str) -> Program:
        """The finished program whose id starts with ``prefix``.

        Raises:
            AnalysisError: no program, or several, match.
        """
        hits = [p for p in self.finished if p.id.startswith(prefix)]
        if len(hits) != 1:
            what = "no program" if not hits else f"{len(hits)} programs"
            raise AnalysisError(
                f"{self.run_dir}: {what} with an id starting {prefix!r}; give "
                "a longer prefix of an evaluated program's id (see 'evo status')"
            )
        return hits[0]


def load_run(run_dir: str | Path) -> RunData:
    """Load ``run_dir`` for analysis (read-only; safe while the run writes).

    Raises:
        AnalysisError: the dir is missing, is not a run, has a newer schema or is damaged, or
            no evaluation has finished in it yet.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise AnalysisError(
            f"{path}: no such run dir; check the path (a run dir is made by 'evo run')"
        )
    try:
        store = RunStore.read(path)
    except StoreError as e:
        raise AnalysisError(str(e).splitlines()[0]) from None
    meta = store.meta
    fidelity = meta.get("fidelity") or (store.fidelities[-1] if store.fidelities else "")
    history = [r for r in store.history if r.fidelity == fidelity]
    if not store.programs:
        raise AnalysisError(
            f"{path}: empty run, no program recorded yet; start it with "
            "'evo run' and analyse it once the seed is evaluated"
        )
    if not history:
        raise AnalysisError(
            f"{path}: no evaluation has finished yet (the seed's baseline is "
            "still running?); try again in a moment"
        )
    direction = meta.get("direction") or store.direction
    return RunData(
        run_dir=path,
        name=path.resolve().name,
        store=store,
        fidelity=fidelity,
        metric=meta.get("metric") or "fitness",
        direction=direction,
        history=history,
        config=_read_toml(path / "config.toml"),
        operators=_read_json(path / "operators.json"),
        counters=_read_json(path / "counters.json"),
        summary=_read_json(path / "summary.json"),
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    # These files are rewritten atomically by the loop; a missing or odd one only means
    # fewer numbers in the report, never a failed analysis.
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
