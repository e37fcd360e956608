"""One writer per run directory: ``RUN_DIR/lock`` holds the writer's pid, host and start time.

Two mechanisms together: the file is created with ``O_CREAT | O_EXCL`` (one creator wins),
and its holder keeps an ``fcntl.flock`` on it for as long as it lives. The kernel drops the
flock when the holder dies, so a lock whose flock is free and whose pid is gone from this
host is stale and is taken over; two processes taking over the same stale lock race for
the flock and only one wins.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from archive.errors import LockError

_TRIES = 300  # x 10 ms: how long to wait for a lock that is changing hands
_CREATING_S = 2.0  # an empty lock file younger than this belongs to a creator still writing it


def _proc_start(pid: int) -> str:
    """Kernel start time of ``pid`` (clock ticks since boot), '' when unknown: it tells a
    recycled pid from the process that wrote the lock."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


class RunLock:
    """The held writer lock of one run directory; release it with :meth:`release`."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, run_dir: str | Path) -> RunLock:
        """Take ``run_dir/lock``, taking over a stale one.

        Raises:
            LockError: a live process holds it.
        """
        path = Path(run_dir) / "lock"
        for _ in range(_TRIES):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
            except FileExistsError:
                lock = cls._take_over(path)
                if lock is not None:
                    return lock
                time.sleep(0.01)
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)  # new file: nobody else can hold it yet
            lock = cls(path, fd)
            lock._write_holder()
            return lock
        raise LockError(
            f"{path}: could not take the lock (it keeps changing hands); "
            "another evo process is starting on this run dir, stop it or wait"
        )

    @classmethod
    def _take_over(cls, path: Path) -> RunLock | None:
        """Take an existing lock file if its holder is dead; None means look again."""
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
                if "pid" not in holder or not cls._holder_alive(holder):
                    return None  # being written by its creator or by a taker right now
                raise cls._held(path, holder) from None
            st = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                return None
            if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
                return None  # released and replaced while we looked
            holder = _parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            if "pid" not in holder and time.time() - st.st_mtime < _CREATING_S:
                return None  # its creator is between O_EXCL and writing; let it finish
            if "pid" in holder and cls._holder_alive(holder):
                raise cls._held(path, holder)
            lock = cls(path, fd)
            lock._write_holder()
            fd = -1  # now owned by the lock
            return lock
        finally:
            if fd >= 0:
                os.close(fd)

    @staticmethod
    def _holder_alive(holder: dict[str, str]) -> bool:
        if holder.get("host") != socket.gethostname():
            return True  # cannot tell from here; never steal another host's lock
        try:
            pid = int(holder["pid"])
        except ValueError:
            return False
        if not _pid_alive(pid):
            return False
        started = holder.get("proc_start", "")
        return not started or started == _proc_start(pid) or not _proc_start(pid)

    @staticmethod
    def _held(path: Path, holder: dict[str, str]) -> LockError:
        run_dir = path.parent
        if holder.get("host") not in (None, socket.gethostname()):
            return LockError(
                f"{run_dir} is locked by pid {holder.get('pid')} on host "
                f"{holder.get('host')}; stop it there, or delete {path} if that "
                "host is down"
            )
        return LockError(
            f"{run_dir} is locked by pid {holder.get('pid')} (alive, since "
            f"{holder.get('started', '?')}); stop it or wait"
        )

    def _write_holder(self) -> None:
        pid = os.getpid()
        text = (
            f"pid={pid}\nhost={socket.gethostname()}\n"
            f"started={time.strftime('%Y-%m-%dT%H:%M:%S%z')}\nproc_start={_proc_start(pid)}\n"
        )
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)
        os.fsync(self._fd)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and drop the flock."""
        if self._fd < 0:
            return
        try:
            st, now = os.fstat(self._fd), os.stat(self.path)
            if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = -1


def read_holder(run_dir: str | Path) -> dict[str, str] | None:
    """The holder recorded in ``run_dir/lock`` (pid, host, started), or None if unlocked."""
    try:
        return _parse((Path(run_dir) / "lock").read_text())
    except (FileNotFoundError, UnicodeDecodeError):
        return None
