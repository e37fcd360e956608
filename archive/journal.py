"""The journal: numbered segment files of JSON lines, each record fsync'd when appended.

A record is ``{"seq": N, "t": unix_time, "program": Program.to_dict()}``; ``seq`` counts
records from 1 without gaps across segments. A checkpoint names the last ``seq`` it holds
and the first segment written after it; loading replays the records after that ``seq``.
Only the last line of the last segment may be damaged (a write cut short by a crash): it is
ignored when reading and cut off when a writer opens the run. Damage anywhere else is a
:class:`StoreError`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive.errors import StoreError

_SEGMENT = re.compile(r"^(\d{8})\.jsonl$")
_sync = getattr(os, "fdatasync", os.fsync)  # the data and the file size; not the mtime


def segment_path(journal_dir: Path, number: int) -> Path:
    return journal_dir / f"{number:08d}.jsonl"


def list_segments(journal_dir: Path) -> list[tuple[int, Path]]:
    """Segments in ``journal_dir`` in order, as ``(number, path)``."""
    try:
        names = os.listdir(journal_dir)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), journal_dir / n) for n in names if (m := _SEGMENT.match(n))]
    return sorted(found)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new, renamed, deleted files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JournalGap(StoreError):
    """Records are missing after the checkpoint (or a reader raced a journal rotation)."""


@dataclass
class Replay:
    """Records read from a journal: those after ``after_seq``, in order.

    Attributes:
        records: the records after the checkpoint.
        last_seq: seq of the last good record (``after_seq`` when there is none).
        tail: ``(path, good_length)`` of the last segment, to cut off a torn tail.
    """

    records: list[dict[str, Any]]
    last_seq: int
    tail: tuple[Path, int] | None


def _corrupt(path: Path, line: int, why: str) -> StoreError:
    return StoreError(
        f"{path}: line {line} is corrupt ({why}) and is not the torn tail of a "
        "crash; restore the file from a backup, or delete that line to drop the "
        "record"
    )


def read_journal(journal_dir: Path, after_seq: int, first_segment: int) -> Replay:
    """Read the records after ``after_seq`` from segments numbered ``>= first_segment``.

    Raises:
        StoreError: a corrupt line other than the last one.
        JournalGap: a gap in ``seq`` (a subclass of StoreError).
        FileNotFoundError: a segment vanished while reading (a writer rotated the journal).
    """
    segments = [(n, p) for n, p in list_segments(journal_dir) if n >= first_segment]
    records: list[dict[str, Any]] = []
    last, tail = after_seq, None
    for i, (_, path) in enumerate(segments):
        data = path.read_bytes()
        is_last = i == len(segments) - 1
        good, pos = 0, 0
        lines = data.split(b"\n")
        for lineno, raw in enumerate(lines, 1):
            end = pos + len(raw) + 1
            final = lineno == len(lines)
            if final and not raw:
                break  # the file ends with a newline
            try:
                rec = json.loads(raw)
                if not (
                    isinstance(rec, dict)
                    and isinstance(rec.get("seq"), int)
                    and isinstance(rec.get("program"), dict)
                ):
                    raise ValueError("not a journal record")
                if final:
                    raise ValueError("no newline at the end")
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                if is_last and (final or lineno == len(lines) - 1 and not lines[-1]):
                    break  # the torn tail of a crash: the add never returned
                raise _corrupt(path, lineno, str(e).splitlines()[0][:80]) from None
            seq = rec["seq"]
            if seq > after_seq:
                if seq != last + 1:
                    raise JournalGap(
                        f"{path}: line {lineno} has record {seq} but {last + 1} "
                        "was expected; journal records are missing, restore the "
                        "journal/ folder from a backup"
                    )
                records.append(rec)
                last = seq
            good, pos = end, end
        if is_last:
            tail = (path, good)
    return Replay(records, last, tail)


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays, which evaluators' metrics often are."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serialisable")


class JournalWriter:
    """Appends records to the current segment; every append is on disk when it returns."""

    def __init__(self, journal_dir: Path, number: int):
        self.dir, self.number = journal_dir, number
        self._fd = -1
        self._open()

    def _open(self) -> None:
        path = segment_path(self.dir, self.number)
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        if created:
            fsync_dir(self.dir)

    def append(self, record: dict[str, Any]) -> str:
        """Write one record as a line and fsync it: the durability point of the run.

        Returns:
            The line written (JSON, without the newline).

        Raises:
            OSError: the write failed; the segment is cut back so no partial line stays.
        """
        return self.append_many([record])[0]

    def append_many(self, records: list[dict[str, Any]]) -> list[str]:
        """Write several records with one fsync (a group commit); all are durable on return."""
        lines = [json.dumps(r, separators=(",", ":"), default=_plain) for r in records]
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            _sync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._size)  # a partial line would corrupt the middle
            raise
        self._size += len(data)
        return lines

    def rotate(self) -> int:
        """Start the next segment (after a checkpoint); returns its number."""
        self.close()
        self.number += 1
        self._open()
        return self.number

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
