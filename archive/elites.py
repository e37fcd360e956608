"""The elite archive: the best program of every niche, kept by a pyribs archive."""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from archive.dims import Dim
from archive.program import Program

DIRECTIONS = ("minimize", "maximize")
_RIBS_STATUS = {0: "not_added", 1: "improved", 2: "new"}


@dataclass(frozen=True)
class AddResult:
    """What adding a program did (or would do) to the archive.

    Attributes:
        status: ``new`` (first elite of its cell), ``improved`` (replaced a worse elite),
            ``not_added`` (the cell's elite is at least as good) or ``rejected`` (not ``ok``,
            or its descriptors are missing or invalid; ``reason`` says which).
        cell: the cell index, or None when rejected.
        previous: id of the cell's elite before the add, or None.
        reason: why the program was rejected.
    """

    status: str
    cell: int | None = None
    previous: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class ArchiveStats:
    """Summary of an archive; ``best_*`` and ``mean_fitness`` are None when it is empty."""

    elites: int
    cells: int
    coverage: float
    qd_score: float
    best_id: str | None
    best_fitness: float | None
    mean_fitness: float | None


class CellElite(NamedTuple):
    """One occupied cell: ``(cell, labels, id, fitness)``; labels has one entry per dim."""

    cell: int
    labels: tuple[str, ...]
    id: str
    fitness: float


@dataclass(frozen=True)
class _Elite:
    id: str
    fitness: float
    score: float


def _ribs() -> Any:
    """``ribs.archives``, imported on the first archive so that ``import archive`` stays cheap
    for the CLI and the lock.

    pyribs 0.12 imports torch whenever it is installed (``ribs/typing.py`` adds torch's types
    to its array-API aliases), which costs every ``evo`` process ~2.5 s of CPU although evo
    hands pyribs numpy arrays only. While torch is not imported yet, it is hidden for the
    moment of the import (``sys.modules["torch"] = None`` makes ``import torch`` raise
    ImportError, pyribs' own fallback) and unhidden at once, so a later ``import torch``
    works as usual. sklearn, which pyribs also imports, is imported first and in plain view:
    scipy's array-API helpers look torch up in ``sys.modules`` and must not find the mask.
    """
    if "ribs.archives" in sys.modules or "torch" in sys.modules:
        return importlib.import_module("ribs.archives")
    importlib.import_module("sklearn.cluster")  # pyribs' CVT archive needs it anyway
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module("ribs.archives")
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


class EliteArchive:
    """MAP-Elites archive of program ids over niche dims, built on pyribs.

    pyribs does the binning and the elitist replacement (a ``GridArchive`` for numeric dims,
    a ``CategoricalArchive`` for labels and for numeric + label mixes, whose numeric dims
    are binned into range labels, and a ``CVTArchive`` for one vector dim). Its 1-d
    solution is an index into this object's table of program ids.

    Programs are compared by a *score* that pyribs maximises: ``fitness - z * fitness_std``
    when maximizing, ``-(fitness + z * fitness_std)`` when minimizing (a missing std counts
    as 0), so ``z > 0`` prefers programs whose fitness is known confidently. A program
    that is not ``ok`` never becomes an elite, and pyribs never lowers an elite: when an
    elite's fitness is re-measured worse, call :meth:`rebuild`.

    QD-score: ``sum(max(0, offset - fitness))`` over elites when minimizing,
    ``sum(max(0, fitness - offset))`` when maximizing. ``offset`` is ``qd_offset`` when
    given; otherwise it is fixed by the first ok program placed (the seed, in a run), as a
    worst case: ``f0 + |f0|`` when minimizing (twice the seed's loss), ``f0 - |f0|`` when
    maximizing (0 for a positive seed score), ``f0 -/+ 1`` when ``f0 == 0``. Elites worse
    than the offset add 0, so the QD-score never decreases as the archive improves.

    Example:
        >>> a = EliteArchive(dims=[Dim(name="depth", low=0, high=8, bins=8)])
        >>> a.add(Program(id="p1", source="", fidelity="f", status="ok", fitness=1.0,
        ...               descriptors={"depth": 3})).status
        'new'
    """

    def __init__(
        self,
        *,
        dims: Sequence[Dim],
        direction: str = "minimize",
        z: float = 0.0,
        qd_offset: float | None = None,
        seed: int | None = None,
        centroids: np.ndarray | None = None,
    ):
        """Build an empty archive.

        Args:
            dims: the niche dims; names must be distinct. A ``cvt`` dim must be alone.
            direction: ``minimize`` or ``maximize`` fitness.
            z: confidence multiplier on ``fitness_std`` (>= 0).
            qd_offset: the QD-score offset; None derives it from the first ok program.
            seed: seeds pyribs (and the CVT centroids, 0 when None).
            centroids: CVT centroids to reuse (from :attr:`centroids` of a saved archive).

        Raises:
            ValueError: an argument is invalid; the message names it.
        """
        dims = tuple(dims)
        if not dims or not all(isinstance(d, Dim) for d in dims):
            raise ValueError("EliteArchive: dims must be a non-empty sequence of Dim")
        names = [d.name for d in dims]
        if len(set(names)) != len(names):
            raise ValueError(f"EliteArchive: dim names must be distinct, got {names}")
        kinds = {d.kind for d in dims}
        if "cvt" in kinds and len(dims) != 1:
            raise ValueError("EliteArchive: a cvt dim must be the only dim")
        if direction not in DIRECTIONS:
            raise ValueError(
                f"EliteArchive: direction must be one of {list(DIRECTIONS)}, got {direction!r}"
            )
        if not (math.isfinite(z) and z >= 0):
            raise ValueError(f"EliteArchive: z must be a finite number >= 0, got {z}")
        if qd_offset is not None and not math.isfinite(qd_offset):
            raise ValueError(f"EliteArchive: qd_offset must be finite, got {qd_offset}")
        self.dims, self.direction, self.z, self.seed = dims, direction, float(z), seed
        self.mode = "cvt" if "cvt" in kinds else "grid" if kinds == {"grid"} else "categorical"
        self._offset = None if qd_offset is None else float(qd_offset)
        self._labels = [d.labels() for d in dims]
        self._archive = self._make_ribs(centroids)
        self._reset()

    def _make_ribs(self, centroids: np.ndarray | None) -> Any:
        ribs = _ribs()
        if self.mode == "grid":
            return ribs.GridArchive(
                solution_dim=1,
                dims=[d.size for d in self.dims],
                ranges=[d.bounds() for d in self.dims],
                seed=self.seed,
            )
        if self.mode == "categorical":
            return ribs.CategoricalArchive(solution_dim=1, seed=self.seed, categories=self._labels)
        (d,) = self.dims
        if centroids is None:
            centroids, _ = ribs.k_means_centroids(
                centroids=d.size,
                ranges=d.ranges,
                samples=max(10_000, 50 * d.size),
                seed=0 if self.seed is None else self.seed,
            )
        return ribs.CVTArchive(
            solution_dim=1,
            centroids=np.asarray(centroids, dtype=np.float64),
            ranges=d.ranges,
            seed=self.seed,
        )

    def _reset(self) -> None:
        self._cells: dict[int, _Elite] = {}
        self._cell_of_id: dict[str, int] = {}
        self._slot: dict[str, int] = {}  # the pyribs solution: a program's index, 0, 1, ...
        self._qd_sum = Fraction(0)  # exact sums: the stats don't depend on the add order
        self._fitness_sum = Fraction(0)
        self._best: _Elite | None = None

    # ---- properties ----

    @property
    def cell_count(self) -> int:
        """Total number of cells."""
        return int(self._archive.cells)

    @property
    def shape(self) -> tuple[int, ...]:
        """Cells along each dim (one entry, the centroid count, for a cvt archive)."""
        return tuple(d.size for d in self.dims)

    @property
    def qd_offset(self) -> float | None:
        """The QD-score offset in use; None until the first ok program is placed."""
        return self._offset

    @property
    def centroids(self) -> np.ndarray | None:
        """The CVT centroids (None unless the archive is cvt)."""
        return np.array(self._archive.centroids) if self.mode == "cvt" else None

    def __len__(self) -> int:
        return len(self._cells)

    # ---- scoring and cells ----

    def score(self, program: Program) -> float:
        """The value pyribs maximises for ``program`` (see the class docstring)."""
        std = program.fitness_std or 0.0
        fitness = float(program.fitness)  # type: ignore[arg-type]
        if self.direction == "maximize":
            return fitness - self.z * std
        return -(fitness + self.z * std)

    def placement(self, descriptors: dict[str, Any]) -> tuple[str, str]:
        """``(problem, note)`` for a program with ``descriptors``: ``problem`` says why it
        cannot be placed at all (a descriptor missing or not finite), ``note`` why it is
        placed in an edge bin (a value outside its dim's range); ``""`` when all is well."""
        _, problem = self._measures(descriptors)
        if problem:
            return problem, ""
        notes = [d.outside(descriptors[d.name]) for d in self.dims]
        return "", "; ".join(n for n in notes if n)

    def _measures(self, descriptors: dict[str, Any]) -> tuple[Any, str]:
        values = []
        for d, labels in zip(self.dims, self._labels, strict=True):
            if d.name not in descriptors:
                return None, f"descriptor {d.name!r} is missing"
            value, reason = d.measure(descriptors[d.name])
            if reason:
                return None, reason
            if self.mode == "categorical" and d.kind == "grid":
                value = labels[d.bin_of(value)]
            values.append(value)
        if self.mode == "cvt":
            return values[0], ""
        return np.array(values, dtype=object if self.mode == "categorical" else np.float64), ""

    def cell_of(self, descriptors: dict[str, Any]) -> int:
        """The cell index of a descriptor dict.

        Raises:
            ValueError: a descriptor is missing or invalid.
        """
        measures, reason = self._measures(descriptors)
        if measures is None:
            raise ValueError(reason)
        return int(self._archive.index_of_single(measures))

    def labels_of(self, cell: int) -> tuple[str, ...]:
        """Per-dim labels of a cell."""
        if self.mode == "cvt":
            return (f"c{cell}",)
        idx = np.unravel_index(int(cell), self.shape)
        return tuple(labels[int(i)] for labels, i in zip(self._labels, idx, strict=True))

    def _check(self, program: Program, cell: bool = True) -> tuple[Any, int, float] | AddResult:
        if not program.ok:
            why = (
                f"status {program.status!r}"
                if program.status != "ok"
                else f"fitness {program.fitness!r} is not a finite number"
            )
            return AddResult("rejected", reason=f"{program.id}: {why}; only ok programs are elites")
        if program.fitness_std is not None and not math.isfinite(program.fitness_std):
            return AddResult("rejected", reason=f"{program.id}: fitness_std is not finite")
        measures, reason = self._measures(program.descriptors)
        if measures is None:
            return AddResult("rejected", reason=f"{program.id}: {reason}")
        index = int(self._archive.index_of_single(measures)) if cell else -1
        return measures, index, self.score(program)

    # ---- adding ----

    def would_add(self, program: Program) -> AddResult:
        """What :meth:`add` would return, without changing anything."""
        checked = self._check(program)
        if isinstance(checked, AddResult):
            return checked
        _, cell, score = checked
        cur = self._cells.get(cell)
        if cur is None:
            return AddResult("new", cell)
        return AddResult("improved" if score > cur.score else "not_added", cell, cur.id)

    def add(self, program: Program) -> AddResult:
        """Offer ``program`` to its cell; it becomes the elite if its score is strictly better."""
        checked = self._check(program)
        if isinstance(checked, AddResult):
            return checked
        measures, cell, score = checked
        cur = self._cells.get(cell)
        if cur is not None and not score > cur.score:
            # pyribs would leave the cell as it is; skipping its call halves the cost of
            # the common case (most children do not beat their cell's elite).
            return AddResult("not_added", cell, cur.id)
        slot = self._slot.get(program.id, len(self._slot))
        info = self._archive.add_single([float(slot)], score, measures)
        status = _RIBS_STATUS[int(info["status"])]
        expected = "new" if cur is None else "improved"
        if status != expected:
            raise RuntimeError(
                f"pyribs answered {status!r} where {expected!r} was expected "
                f"for {program.id} in cell {cell}"
            )
        self._slot.setdefault(program.id, slot)
        self._place(cell, _Elite(program.id, float(program.fitness), score))  # type: ignore[arg-type]
        return AddResult(status, cell, cur.id if cur else None)

    def _contribution(self, fitness: float) -> Fraction:
        assert self._offset is not None
        gain = self._offset - fitness if self.direction == "minimize" else fitness - self._offset
        return Fraction(max(0.0, gain))

    def _place(self, cell: int, elite: _Elite) -> None:
        if self._offset is None:
            f0 = elite.fitness
            spread = abs(f0) if f0 != 0 else 1.0
            self._offset = f0 + spread if self.direction == "minimize" else f0 - spread
        old = self._cells.get(cell)
        if old is not None:
            self._qd_sum -= self._contribution(old.fitness)
            self._fitness_sum -= Fraction(old.fitness)
            del self._cell_of_id[old.id]
        self._cells[cell] = elite
        self._cell_of_id[elite.id] = cell
        self._qd_sum += self._contribution(elite.fitness)
        self._fitness_sum += Fraction(elite.fitness)
        best = self._best
        # Ties go to the smaller id, so the best is the same whatever the order of adds.
        if best is None or (elite.score, best.id) > (best.score, elite.id):
            self._best = elite

    def cells_of(self, programs: Sequence[Program]) -> list[int | None]:
        """Cell of each program (None for one that would be rejected), in one batched call."""
        checked = [self._check(p, cell=False) for p in programs]
        valid = [i for i, c in enumerate(checked) if not isinstance(c, AddResult)]
        out: list[int | None] = [None] * len(programs)
        if valid:
            batch = np.stack([checked[i][0] for i in valid])  # type: ignore[index]
            for i, cell in zip(valid, self._archive.index_of(batch), strict=True):
                out[i] = int(cell)
        return out

    def rebuild(self, programs: Iterable[Program]) -> None:
        """Empty the archive and re-add ``programs``: the way to lower a re-measured elite.

        Each cell gets its best-scoring program; among equal scores the first one in
        ``programs`` wins, as with successive :meth:`add` calls. The QD offset is kept.
        """
        programs = list(programs)
        checked = [self._check(p, cell=False) for p in programs]
        valid = [
            (p, c) for p, c in zip(programs, checked, strict=True) if not isinstance(c, AddResult)
        ]
        self._archive.clear()
        self._reset()
        if not valid:
            return
        # Batched index_of and add: a rebuild costs one pyribs call, not one per elite.
        cells = self._archive.index_of(np.stack([c[0] for _, c in valid]))
        winners: dict[int, tuple[Program, Any, float]] = {}
        for (p, (measures, _, score)), cell in zip(valid, cells, strict=True):
            cur = winners.get(int(cell))
            if cur is None or score > cur[2]:
                winners[int(cell)] = (p, measures, score)
        order = sorted(winners)
        for cell in order:
            pid = winners[cell][0].id
            self._slot.setdefault(pid, len(self._slot))
        info = self._archive.add(
            np.array([[float(self._slot[winners[c][0].id])] for c in order]),
            np.array([winners[c][2] for c in order]),
            np.stack([winners[c][1] for c in order]),
        )
        if not np.all(info["status"] == 2):
            raise RuntimeError("pyribs refused an elite while rebuilding an empty archive")
        for cell in order:
            p, _, score = winners[cell]
            self._place(cell, _Elite(p.id, float(p.fitness), score))  # type: ignore[arg-type]

    # ---- reading ----

    def elite_ids(self) -> list[str]:
        """Ids of the elites, in cell order."""
        return [self._cells[c].id for c in sorted(self._cells)]

    def cell_of_elite(self, program_id: str) -> int | None:
        """The cell whose elite is ``program_id``, or None."""
        return self._cell_of_id.get(program_id)

    def elite(self, cell: int) -> CellElite | None:
        """The elite of ``cell``, or None when the cell is empty."""
        e = self._cells.get(int(cell))
        return None if e is None else CellElite(int(cell), self.labels_of(cell), e.id, e.fitness)

    def cells(self) -> Iterator[CellElite]:
        """Every occupied cell as ``(cell, labels, id, fitness)``, in cell order (for plots)."""
        for cell in sorted(self._cells):
            e = self._cells[cell]
            yield CellElite(cell, self.labels_of(cell), e.id, e.fitness)

    def stats(self) -> ArchiveStats:
        """Elites, coverage, QD-score (see the class docstring), best and mean fitness."""
        n, cells = len(self._cells), self.cell_count
        best = self._best
        return ArchiveStats(
            elites=n,
            cells=cells,
            coverage=n / cells,
            qd_score=float(self._qd_sum),
            best_id=best.id if best else None,
            best_fitness=best.fitness if best else None,
            mean_fitness=float(self._fitness_sum / n) if n else None,
        )
