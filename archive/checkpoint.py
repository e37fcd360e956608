"""``archive.h5``: the atomic checkpoint of a run, and the one file users open.

Layout (schema version :data:`SCHEMA_VERSION`)::

    /                 attrs: schema_version, format, meta (JSON), config (JSON: dims,
                      direction, z, qd_offset, seed), journal_seq (last journal record
                      held), journal_segment (first segment written after it),
                      fidelities (JSON list), qd_offsets (JSON: fidelity -> offset)
    /programs/COLUMN  one row per (id, fidelity), in first-seen order: id, fidelity, source,
                      operator, description, idea, status, reason, stderr_tail (UTF-8
                      strings); parents, runs, descriptors, artifacts (JSON strings);
                      lineage (UTF-8; artifacts and lineage may be absent in files
                      written before them); birth, tokens
                      (int64); wall_time, cost, fitness, fitness_std (float64, NaN where
                      has_fitness / has_fitness_std is False)
    /elites/COLUMN    one row per elite: fidelity, cell, id, fitness, labels (JSON)
    /history/COLUMN   one row per finished evaluation: see :class:`HistoryRow`
    /cvt_centroids    only for a cvt archive

Open it with ``h5py.File(path, "r")``; ``pandas.DataFrame({k: ds.asstr()[()] if
ds.dtype.kind == "O" else ds[()] for k, ds in f["programs"].items()})`` gives a table.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from archive.errors import StoreError
from archive.journal import fsync_dir
from archive.program import Program, SeedRun

SCHEMA_VERSION = 1
FORMAT = "evo-archive"

_STR = (
    "id",
    "fidelity",
    "source",
    "operator",
    "description",
    "idea",
    "status",
    "reason",
    "stderr_tail",
)
_JSON = ("parents", "runs", "descriptors")
_INT = ("birth", "tokens")
_FLOAT = ("wall_time", "cost")
_OPTIONAL = ("fitness", "fitness_std")


class HistoryRow(NamedTuple):
    """The archive after one finished evaluation (``fitness``/``best`` None when missing)."""

    evaluation: int
    time: float
    id: str
    fidelity: str
    status: str
    fitness: float | None
    best: float | None
    elites: int
    coverage: float
    qd_score: float
    added: str


@dataclass
class Checkpoint:
    """Everything ``archive.h5`` holds, in memory."""

    config: dict[str, Any]
    meta: dict[str, Any]
    journal_seq: int
    journal_segment: int
    programs: list[Program]
    fidelities: list[str]
    qd_offsets: dict[str, float | None]
    elites: list[
        tuple[str, int, str, float, tuple[str, ...]]
    ]  # fidelity, cell, id, fitness, labels
    history: list[HistoryRow]
    centroids: np.ndarray | None = None


_STR_DT = h5py.string_dtype("utf-8")


def _strings(group: h5py.Group, name: str, values: list[str]) -> None:
    group.create_dataset(name, data=np.array(values, dtype=object), dtype=_STR_DT)


def _nan(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def write_checkpoint(path: Path, cp: Checkpoint) -> None:
    """Write ``cp`` to ``path`` atomically: temp file in the same dir, fsync, rename, fsync dir.

    Whatever instant the process dies, ``path`` is the old complete file or the new one.
    """
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        with h5py.File(tmp, "w", locking=False) as f:
            f.attrs.update(
                {
                    "schema_version": SCHEMA_VERSION,
                    "format": FORMAT,
                    "meta": json.dumps(cp.meta),
                    "config": json.dumps(cp.config),
                    "journal_seq": cp.journal_seq,
                    "journal_segment": cp.journal_segment,
                    "fidelities": json.dumps(cp.fidelities),
                    "qd_offsets": json.dumps(cp.qd_offsets),
                }
            )
            g = f.create_group("programs")
            ps = cp.programs
            for name in _STR:
                _strings(g, name, [getattr(p, name) for p in ps])
            _strings(g, "parents", [json.dumps(list(p.parents)) for p in ps])
            _strings(g, "runs", [json.dumps([r.to_dict() for r in p.runs]) for p in ps])
            _strings(g, "descriptors", [json.dumps(p.descriptors) for p in ps])
            _strings(g, "artifacts", [json.dumps(p.artifacts) for p in ps])
            _strings(g, "lineage", [p.lineage for p in ps])
            for name in _INT:
                g.create_dataset(name, data=np.array([getattr(p, name) for p in ps], np.int64))
            for name in _FLOAT:
                g.create_dataset(name, data=np.array([getattr(p, name) for p in ps], np.float64))
            for name in _OPTIONAL:
                values = [getattr(p, name) for p in ps]
                g.create_dataset(name, data=_nan(values))
                g.create_dataset(f"has_{name}", data=np.array([v is not None for v in values]))
            e, elite_rows = f.create_group("elites"), cp.elites
            _strings(e, "fidelity", [r[0] for r in elite_rows])
            e.create_dataset("cell", data=np.array([r[1] for r in elite_rows], np.int64))
            _strings(e, "id", [r[2] for r in elite_rows])
            e.create_dataset("fitness", data=np.array([r[3] for r in elite_rows], np.float64))
            _strings(e, "labels", [json.dumps(list(r[4])) for r in elite_rows])
            h = f.create_group("history")
            columns = list(zip(*cp.history, strict=True)) or [[] for _ in HistoryRow._fields]
            for name, col in zip(HistoryRow._fields, columns, strict=True):
                if name in ("id", "fidelity", "status", "added"):
                    _strings(h, name, list(col))
                elif name in ("evaluation", "elites"):
                    h.create_dataset(name, data=np.array(col, np.int64))
                else:
                    h.create_dataset(name, data=_nan(list(col)))
            if cp.centroids is not None:
                f.create_dataset("cvt_centroids", data=cp.centroids)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _str_col(group: h5py.Group, name: str) -> list[str]:
    return list(group[name].asstr()[()])


def _opt(values: np.ndarray, present: np.ndarray) -> list[float | None]:
    return [float(v) if h else None for v, h in zip(values, present, strict=True)]


def read_checkpoint(path: Path) -> Checkpoint:
    """Read ``archive.h5``; never writes, never takes a lock.

    Raises:
        StoreError: missing, unreadable or damaged file, or a schema newer than this code.
    """
    if not path.is_file():
        raise StoreError(
            f"{path}: missing; {path.parent} is not an evo run dir (a run "
            "creates it), check the path"
        )
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as e:
        raise StoreError(
            f"{path}: not a readable HDF5 file ({_first_line(e)}); restore it "
            "from a backup or start a new run dir"
        ) from None
    try:
        with f:
            version = f.attrs.get("schema_version")
            if version is None or f.attrs.get("format") != FORMAT:
                raise StoreError(f"{path}: not an evo archive (no schema_version); check the path")
            if int(version) > SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: schema version {int(version)} is newer than this evo "
                    f"reads ({SCHEMA_VERSION}); upgrade evo"
                )
            return _read(f)
    except StoreError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise StoreError(
            f"{path}: damaged archive ({_first_line(e)}); restore it from a "
            "backup or start a new run dir"
        ) from None


def _read(f: h5py.File) -> Checkpoint:
    g = f["programs"]
    cols: dict[str, list[Any]] = {name: _str_col(g, name) for name in _STR + _JSON}
    n = len(cols["id"])
    cols["artifacts"] = _str_col(g, "artifacts") if "artifacts" in g else ["{}"] * n
    cols["lineage"] = _str_col(g, "lineage") if "lineage" in g else [""] * n  # added later
    for name in _INT:
        cols[name] = [int(v) for v in g[name][()]]
    for name in _FLOAT:
        cols[name] = [float(v) for v in g[name][()]]
    for name in _OPTIONAL:
        cols[name] = _opt(g[name][()], g[f"has_{name}"][()])
    programs = []
    for i in range(len(cols["id"])):
        kw = {name: col[i] for name, col in cols.items()}
        kw["parents"] = tuple(json.loads(kw["parents"]))
        kw["runs"] = [SeedRun.from_dict(r) for r in json.loads(kw["runs"])]
        kw["descriptors"] = json.loads(kw["descriptors"])
        kw["artifacts"] = json.loads(kw["artifacts"])
        programs.append(Program(**kw))
    e = f["elites"]
    elites = list(
        zip(
            _str_col(e, "fidelity"),
            [int(c) for c in e["cell"][()]],
            _str_col(e, "id"),
            [float(v) for v in e["fitness"][()]],
            [tuple(json.loads(v)) for v in _str_col(e, "labels")],
            strict=True,
        )
    )
    h = f["history"]
    hist_cols = []
    for name in HistoryRow._fields:
        ds = h[name]
        if name in ("id", "fidelity", "status", "added"):
            hist_cols.append(_str_col(h, name))
        elif name in ("evaluation", "elites"):
            hist_cols.append([int(v) for v in ds[()]])
        elif name in ("fitness", "best"):
            hist_cols.append([None if np.isnan(v) else float(v) for v in ds[()]])
        else:
            hist_cols.append([float(v) for v in ds[()]])
    history = [HistoryRow(*row) for row in zip(*hist_cols, strict=True)]
    a = f.attrs
    return Checkpoint(
        config=json.loads(a["config"]),
        meta=json.loads(a["meta"]),
        journal_seq=int(a["journal_seq"]),
        journal_segment=int(a["journal_segment"]),
        programs=programs,
        fidelities=json.loads(a["fidelities"]),
        qd_offsets=json.loads(a["qd_offsets"]),
        elites=elites,
        history=history,
        centroids=f["cvt_centroids"][()] if "cvt_centroids" in f else None,
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:120] if text else type(e).__name__
