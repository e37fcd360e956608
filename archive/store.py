"""The run directory store: journal first, then elites; ``archive.h5`` as atomic checkpoint.

State = ``archive.h5`` + replay of the journal records after it. Every :meth:`RunStore.add`
is fsync'd to the journal before anything in memory changes, and replay goes through the
same code as a live add, so the state after a crash and reload equals the state before it
for every journaled record.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from archive.checkpoint import Checkpoint, HistoryRow, read_checkpoint, write_checkpoint
from archive.dims import Dim
from archive.elites import AddResult, EliteArchive
from archive.errors import StoreError
from archive.journal import (
    JournalGap,
    JournalWriter,
    Replay,
    fsync_dir,
    list_segments,
    read_journal,
)
from archive.lock import RunLock
from archive.program import PENDING, STATUSES, Program

ARCHIVE = "archive.h5"
JOURNAL = "journal"
_READ_TRIES = 5  # a reader racing a checkpoint that rotates the journal reads again


class RunStore:
    """One run directory: programs, elites per fidelity, history; one writer, many readers.

    Use :meth:`create`, :meth:`open` or :meth:`read`, never the constructor. A store opened
    with ``writer=True`` holds ``RUN_DIR/lock`` until :meth:`close` (it is a context manager).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with RunStore.create(d + "/run", dims=[Dim(name="x", bins=4)],
        ...                      direction="minimize", meta={}) as s:
        ...     r = s.add(Program(id="a", source="", fidelity="f", status="ok", fitness=2.0,
        ...                       descriptors={"x": 0.3}))
        >>> r.status, RunStore.read(d + "/run").best("f").id
        ('new', 'a')
    """

    def __init__(self, run_dir: Path, cp: Checkpoint, replay: Replay):
        self.run_dir = run_dir
        self.meta: dict[str, Any] = cp.meta
        self.config = cp.config
        self.dims = tuple(Dim.from_dict(d) for d in cp.config["dims"])
        self.direction: str = cp.config["direction"]
        self.z = float(cp.config["z"])
        self._centroids = cp.centroids
        self._checkpoint_segment = cp.journal_segment
        self._tail = replay.tail
        self._lock: RunLock | None = None
        self._journal: JournalWriter | None = None
        self.programs: dict[tuple[str, str], Program] = {p.key: p for p in cp.programs}
        self.history: list[HistoryRow] = list(cp.history)
        self._seq = cp.journal_seq
        self._offspring: collections.Counter[str] = collections.Counter()
        self._seen_ids: set[str] = set()
        self._next_birth = 0
        for p in cp.programs:
            self._note_lineage(p)
        self._archives: dict[str, EliteArchive] = {}
        self._members: dict[str, dict[int, list[tuple[str, str]]]] = {}
        for fid in cp.fidelities:
            arch = self._archive(fid, cp.qd_offsets.get(fid))
            rows = [r for r in cp.elites if r[0] == fid]
            arch.rebuild(self.programs[(r[2], fid)] for r in rows)
            if [(c.cell, c.id) for c in arch.cells()] != sorted((r[1], r[2]) for r in rows):
                raise StoreError(
                    f"{run_dir / ARCHIVE}: the elites of fidelity {fid!r} do not "
                    "match its programs; restore the file from a backup"
                )
        for rec in replay.records:
            self._apply(rec)
        self._seq = replay.last_seq

    # ---- opening ----

    def _config_archive(self, qd_offset: float | None) -> EliteArchive:
        return EliteArchive(
            dims=self.dims,
            direction=self.direction,
            z=self.z,
            qd_offset=qd_offset if qd_offset is not None else self.config.get("qd_offset"),
            seed=self.config.get("seed"),
            centroids=self._centroids,
        )

    @classmethod
    def create(
        cls,
        run_dir: str | Path,
        *,
        dims: Sequence[Dim],
        direction: str,
        z: float = 0.0,
        meta: dict[str, Any] | None = None,
        qd_offset: float | None = None,
        seed: int | None = None,
    ) -> RunStore:
        """Start a new run in ``run_dir`` (created if missing) and return it open for writing.

        Args:
            dims: niche dims of every fidelity's archive.
            direction: ``minimize`` or ``maximize``.
            z: confidence multiplier on ``fitness_std`` (see :class:`EliteArchive`).
            meta: JSON-serialisable facts about the run (target, config), kept in archive.h5.
            qd_offset: QD-score offset; None derives it from the first ok program.
            seed: seeds pyribs and the CVT centroids.

        Raises:
            StoreError: ``run_dir`` already holds a run.
            LockError: another process holds ``run_dir/lock``.
            ValueError: invalid dims, direction or z.
        """
        run_dir = Path(run_dir)
        path = run_dir / ARCHIVE
        if path.exists():
            raise StoreError(
                f"{path}: already exists; {run_dir} holds a run, resume it or choose a new run dir"
            )
        if any(p.stat().st_size for _, p in list_segments(run_dir / JOURNAL)):
            raise StoreError(
                f"{run_dir / JOURNAL}: holds records but {path} is missing; "
                "restore archive.h5 or choose a new run dir"
            )
        probe = EliteArchive(dims=dims, direction=direction, z=z, qd_offset=qd_offset, seed=seed)
        config = {
            "dims": [d.to_dict() for d in dims],
            "direction": direction,
            "z": float(z),
            "qd_offset": qd_offset,
            "seed": seed,
        }
        meta = dict(meta or {})
        json.dumps(meta)  # fail now, not at the first checkpoint
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock.acquire(run_dir)
        try:
            (run_dir / JOURNAL).mkdir(exist_ok=True)
            cp = Checkpoint(
                config=config,
                meta=meta,
                journal_seq=0,
                journal_segment=1,
                programs=[],
                fidelities=[],
                qd_offsets={},
                elites=[],
                history=[],
                centroids=probe.centroids,
            )
            write_checkpoint(path, cp)
            store = cls(run_dir, cp, Replay([], 0, None))
            store._become_writer(lock)
        except BaseException:
            lock.release()
            raise
        return store

    @classmethod
    def _load(cls, run_dir: Path) -> RunStore:
        if not run_dir.is_dir():
            raise StoreError(f"{run_dir}: no such run dir; check the path")
        for attempt in range(_READ_TRIES):
            cp = read_checkpoint(run_dir / ARCHIVE)
            try:
                replay = read_journal(run_dir / JOURNAL, cp.journal_seq, cp.journal_segment)
            except (FileNotFoundError, JournalGap):
                if attempt == _READ_TRIES - 1:
                    raise
                continue  # a writer checkpointed and rotated the journal meanwhile
            try:
                return cls(run_dir, cp, replay)
            except (KeyError, TypeError, ValueError) as e:  # records that do not fit together
                raise StoreError(
                    f"{run_dir}: damaged run ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:100] if str(e) else ''}); restore "
                    "archive.h5 and journal/ from a backup"
                ) from None
        raise AssertionError("unreachable")

    @classmethod
    def read(cls, run_dir: str | Path) -> RunStore:
        """A read-only snapshot of a run; never takes or waits for the lock.

        Raises:
            StoreError: missing run dir, unreadable archive.h5 or a corrupt journal.
        """
        return cls._load(Path(run_dir))

    @classmethod
    def open(cls, run_dir: str | Path, *, writer: bool = True) -> RunStore:
        """Open a run; with ``writer`` take its lock, to add and checkpoint (resume).

        Nothing on disk changes unless it succeeds; then a torn journal tail left by a crash
        is cut off and journal segments the checkpoint already holds are removed.

        Raises:
            StoreError: missing run dir, unreadable archive.h5 or a corrupt journal.
            LockError: a live process holds the lock.
        """
        run_dir = Path(run_dir)
        if not writer:
            return cls.read(run_dir)
        before = _fingerprint(run_dir)
        store = cls._load(run_dir)
        lock = RunLock.acquire(run_dir)
        try:
            if _fingerprint(run_dir) != before:  # a writer ran between our read and the lock
                store = cls._load(run_dir)
            store._become_writer(lock)
        except BaseException:
            lock.release()
            raise
        return store

    def _become_writer(self, lock: RunLock) -> None:
        jdir = self.run_dir / JOURNAL
        jdir.mkdir(exist_ok=True)
        if self._tail is not None:
            path, good = self._tail
            if path.stat().st_size > good:
                with open(path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
        for n, path in list_segments(jdir):
            if n < self._checkpoint_segment:
                path.unlink()  # held by archive.h5 already
        for tmp in self.run_dir.glob(f".{ARCHIVE}.tmp.*"):
            tmp.unlink()  # a checkpoint cut short by a crash
        fsync_dir(jdir)
        segments = list_segments(jdir)
        number = segments[-1][0] if segments else self._checkpoint_segment
        self._journal = JournalWriter(jdir, number)
        self._lock = lock

    # ---- writing ----

    def _require_writer(self) -> JournalWriter:
        if self._journal is None:
            raise StoreError(f"{self.run_dir}: opened read-only; open it with writer=True")
        return self._journal

    def add(self, program: Program) -> AddResult | None:
        """Journal ``program`` (fsync'd: the durability point), then update the elites.

        A ``pending`` program marks a child in flight and returns None. For a finished one
        the latest record per ``(id, fidelity)`` replaces the earlier one; an elite
        re-measured worse rebuilds its cell. A history row is appended.

        Raises:
            ValueError: unknown status, empty fidelity, or data that is not JSON-serialisable.
            StoreError: the store is read-only.
        """
        return self.add_many([program])[0]

    def add_many(self, programs: Sequence[Program]) -> list[AddResult | None]:
        """:meth:`add` for several programs with one fsync (a group commit).

        All of them are durable when it returns (a crash during the call may keep a prefix);
        nothing changes if it raises ValueError. Results are in the order given.
        """
        journal = self._require_writer()
        for program in programs:
            if program.status not in STATUSES and program.status != PENDING:
                raise ValueError(
                    f"program {program.id}: status {program.status!r} is not one "
                    f"of {[*STATUSES, PENDING]}"
                )
            if not program.id or not program.fidelity:
                raise ValueError(f"program {program.id!r}: id and fidelity must be non-empty")
        now = time.time()
        records = [
            {"seq": self._seq + 1 + i, "t": now, "program": program_dict(p)}
            for i, p in enumerate(programs)
        ]
        lines = journal.append_many(records)
        self._seq += len(records)
        # Apply the decoded lines, not `records`: live state is then exactly what replay gives.
        return [self._apply(json.loads(line)) for line in lines]

    def next_birth(self) -> int:
        """The next birth index (one more than any program's birth so far)."""
        birth = self._next_birth
        self._next_birth += 1
        return birth

    def checkpoint(self) -> None:
        """Write archive.h5 atomically with everything so far, then rotate the journal."""
        journal = self._require_writer()
        cp = Checkpoint(
            config=self.config,
            meta=self.meta,
            journal_seq=self._seq,
            journal_segment=journal.number + 1,
            programs=list(self.programs.values()),
            fidelities=list(self._archives),
            qd_offsets={f: a.qd_offset for f, a in self._archives.items()},
            elites=[
                (f, c.cell, c.id, c.fitness, c.labels)
                for f, a in self._archives.items()
                for c in a.cells()
            ],
            history=self.history,
            centroids=self._centroids,
        )
        write_checkpoint(self.run_dir / ARCHIVE, cp)
        self._checkpoint_segment = journal.rotate()
        for n, path in list_segments(self.run_dir / JOURNAL):
            if n < self._checkpoint_segment:
                path.unlink()
        fsync_dir(self.run_dir / JOURNAL)

    def close(self) -> None:
        """Release the lock (writers); the store can no longer add."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- applying records (live and replay) ----

    def _archive(self, fidelity: str, qd_offset: float | None = None) -> EliteArchive:
        arch = self._archives.get(fidelity)
        if arch is None:
            arch = self._archives[fidelity] = self._config_archive(qd_offset)
        return arch

    def _note_lineage(self, p: Program) -> None:
        if p.birth >= self._next_birth:
            self._next_birth = p.birth + 1
        if p.id not in self._seen_ids:  # a child counts once, whatever its fidelities
            self._seen_ids.add(p.id)
            self._offspring.update(set(p.parents))

    def _apply(self, record: dict[str, Any]) -> AddResult | None:
        p = Program.from_dict(record["program"])
        self.programs[p.key] = p
        self._note_lineage(p)
        if p.status == PENDING:
            return None
        arch = self._archive(p.fidelity)
        result = self._offer(arch, p)
        if result.cell is not None and p.fidelity in self._members:
            self._members[p.fidelity][result.cell].append(p.key)
        s = arch.stats()
        self.history.append(
            HistoryRow(
                len(self.history),
                float(record["t"]),
                p.id,
                p.fidelity,
                p.status,
                p.fitness if p.ok else None,
                s.best_fitness,
                s.elites,
                s.coverage,
                s.qd_score,
                result.status,
            )
        )
        return result

    def _offer(self, arch: EliteArchive, p: Program) -> AddResult:
        cell = arch.cell_of_elite(p.id)
        if cell is None:
            return arch.add(p)
        result = arch.would_add(p)
        if result.status == "improved" and result.cell == cell:
            return arch.add(p)  # re-measured better in the same cell: pyribs handles it
        # An elite re-measured worse (or moved, or failed): pyribs never lowers an elite, so
        # rebuild from the other cells' elites plus every program of this cell. Candidates
        # are sorted by score, then id, so the winner does not depend on their order.
        members = self._members_of(p.fidelity, arch)
        keys = list(dict.fromkeys(members.get(cell, ())))
        cands = [self.programs[k] for k in keys]
        cands = [q for q, c in zip(cands, arch.cells_of(cands), strict=True) if c == cell]
        cands.sort(key=lambda q: (-arch.score(q), q.id))
        others = [self.programs[(i, p.fidelity)] for i in arch.elite_ids() if i != p.id]
        arch.rebuild(others + cands + [p])
        now = arch.cell_of_elite(p.id)
        return AddResult("improved", now, p.id) if now is not None else arch.would_add(p)

    def _members_of(self, fidelity: str, arch: EliteArchive) -> dict[int, list[tuple[str, str]]]:
        """Keys of the ok programs of each cell (with stale entries; callers re-check the
        cell). Built on first need, then kept up to date by every add."""
        members = self._members.get(fidelity)
        if members is None:
            ps = [q for q in self.programs.values() if q.fidelity == fidelity and q.ok]
            members = self._members[fidelity] = collections.defaultdict(list)
            for q, c in zip(ps, arch.cells_of(ps), strict=True):
                if c is not None:
                    members[c].append(q.key)
        return members

    # ---- reading ----

    @property
    def fidelities(self) -> list[str]:
        """Fidelities with finished evaluations, in the order they first appeared."""
        return list(self._archives)

    @property
    def evaluations(self) -> int:
        """Finished evaluations so far (one history row each)."""
        return len(self.history)

    @property
    def journal_seq(self) -> int:
        """Seq of the last journal record applied."""
        return self._seq

    def elites(self, fidelity: str) -> EliteArchive:
        """The elite archive of ``fidelity`` (empty if it has none); read it, don't add to it."""
        arch = self._archives.get(fidelity)  # not `or`: an empty archive is falsy
        return arch if arch is not None else self._config_archive(None)

    def elite_programs(self, fidelity: str) -> list[Program]:
        """The elites of ``fidelity`` as Programs, in cell order (parents for selection)."""
        return [self.programs[(i, fidelity)] for i in self.elites(fidelity).elite_ids()]

    def best(self, fidelity: str | None = None) -> Program | None:
        """The best elite of ``fidelity``; None picks the fidelity that appeared last (the
        highest of a cascade). None when there is no ok program."""
        if fidelity is None:
            if not self._archives:
                return None
            fidelity = list(self._archives)[-1]
        best_id = self.elites(fidelity).stats().best_id
        return None if best_id is None else self.programs[(best_id, fidelity)]

    def pending(self) -> list[Program]:
        """Programs dispatched but not finished (to re-queue on resume), oldest first."""
        return [p for p in self.programs.values() if p.status == PENDING]

    def counts_by_status(self) -> dict[str, int]:
        """Number of (id, fidelity) records per status, pending included."""
        return dict(collections.Counter(p.status for p in self.programs.values()))

    def offspring_counts(self) -> Mapping[str, int]:
        """Children (distinct ids, in flight included) per parent id; a read-only view."""
        return MappingProxyType(self._offspring)

    def centroids(self) -> np.ndarray | None:
        """The CVT centroids shared by every fidelity (None unless the dims are cvt)."""
        return self._centroids


_FIELDS = tuple(f.name for f in dataclasses.fields(Program))


def program_dict(p: Program) -> dict[str, Any]:
    """``p.to_dict()`` as JSON sees it, without ``dataclasses.asdict``'s deep copy (which was a
    third of the CPU cost of an add)."""
    d = {name: getattr(p, name) for name in _FIELDS}
    d["parents"] = list(p.parents)
    d["runs"] = [r.to_dict() for r in p.runs]
    return d


def _fingerprint(run_dir: Path) -> tuple[Any, ...]:
    """What changes on disk when a writer adds or checkpoints."""

    def stat(p: Path) -> tuple[int, int, int] | None:
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    segments = list_segments(run_dir / JOURNAL)
    return (stat(run_dir / ARCHIVE), tuple((n, stat(p)) for n, p in segments))
