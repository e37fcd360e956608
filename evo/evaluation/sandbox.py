"""Containment for one untrusted child process: its environment, its process tree, its output.

Three pieces, each used by :mod:`evo.evaluation.evaluator`:

* :func:`child_environment` builds the child's environment from an allow-list; a variable
  whose name looks like a secret never gets through, whoever asked for it.
* :class:`ProcessTree` finds every process the child started, even one that double-forked
  or called ``setsid``: members of the child's session and process group, their descendants
  (tracked by polling, so an orphan reparented to init stays known), and any process whose
  environment carries the job's ``EVO_JOB_ID`` marker. It sums their resident memory (the
  memory limit) and kills them all.
* :class:`OutputCapture` keeps the first ``cap`` bytes of a stream on disk and the last few KB
  in memory, discarding the middle, so a child printing gigabytes neither fills the disk
  nor blocks on a full pipe.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")
"""A variable whose upper-cased name contains one of these never reaches a child."""

COUNT_WORDS = ("TOKENS",)
"""Whole name parts that are counts, not credentials (``TINYGPT_BUDGET_TOKENS``, ``MAX_TOKENS``).

Without this exemption a substring rule would silently drop a target's token budget. The
exemption cannot leak a secret's value: any variable whose value equals a secret-named parent
variable's value is dropped as well (see :func:`child_environment`).
"""

PASSTHROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "PYTHONHASHSEED",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "CUDA_PATH",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_DRIVER_CAPABILITIES",
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
)
"""Parent variables a child inherits when they are set (CUDA needs the library paths)."""

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "EVO_THREADS")

MARKER_VAR = "EVO_JOB_ID"
WORKDIR_VAR = "EVO_WORKDIR"
"""Names the evaluation's working dir; the Ray backend kills a lost task's processes by it."""

_PAGE = os.sysconf("SC_PAGE_SIZE")


def is_secret_name(name: str) -> bool:
    """True when ``name`` looks like it holds a credential (``OPENAI_API_KEY``, ``HF_TOKEN``)."""
    parts = [p for p in re.split(r"[^A-Z0-9]+", name.upper()) if p not in COUNT_WORDS]
    joined = "_".join(parts)
    return any(word in joined for word in SECRET_WORDS)


def _secret_values() -> set[str]:
    """Values of the parent's secret-named variables (long enough not to match by chance)."""
    return {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= 8}


def child_environment(
    *,
    workdir: Path,
    result_path: Path | None,
    seed: int,
    fidelity: str,
    job_id: str,
    threads: int,
    cuda_visible_devices: str,
    extra: dict[str, str],
) -> tuple[dict[str, str], list[str]]:
    """The environment of one child, and the names that were dropped as secrets.

    Order of precedence: allow-listed parent variables < ``extra`` (the fidelity's env and
    what the caller passes, e.g. ``TINYGPT_DATA``) < the evaluator's own protocol variables.
    ``PYTHONPATH`` is never inherited; pass it in ``extra`` when a target needs it.
    ``EVO_RESULT`` is set only when ``result_path`` is given (a target whose program writes
    its own result); ``EVO_WORKDIR`` (the working dir) marks the evaluation's processes.
    """
    env = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.setdefault("PYTHONHASHSEED", "0")  # string hashing, hence set order, is reproducible
    env["HOME"] = str(workdir)
    env["TMPDIR"] = str(workdir / "tmp")
    env["PYTHONUNBUFFERED"] = "1"  # the tails show the last lines even when the child is killed
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update({str(k): str(v) for k, v in extra.items()})
    env.update({t: str(threads) for t in THREAD_VARS})
    env.pop("EVO_RESULT", None)  # a result path never comes from the caller
    if result_path is not None:
        env["EVO_RESULT"] = str(result_path)
    env.update(
        {
            WORKDIR_VAR: str(workdir),
            "EVO_SEED": str(int(seed)),
            "EVO_FIDELITY": fidelity,
            MARKER_VAR: job_id,
            "CUDA_VISIBLE_DEVICES": cuda_visible_devices,
        }
    )
    secrets = _secret_values()
    dropped = sorted(k for k, v in env.items() if is_secret_name(k) or v in secrets)
    for k in dropped:
        del env[k]
    return env, dropped


@dataclass(frozen=True)
class _Stat:
    pid: int
    ppid: int
    pgid: int
    sid: int
    zombie: bool
    start: int  # clock ticks after boot; tells a reused pid from the process we saw
    rss: int  # bytes


def _read_stat(pid: int) -> _Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; the fields start after the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return _Stat(
            pid=pid,
            ppid=int(rest[1]),
            pgid=int(rest[2]),
            sid=int(rest[3]),
            zombie=rest[0] in (b"Z", b"X"),
            start=int(rest[19]),
            rss=int(rest[21]) * _PAGE,
        )
    except (IndexError, ValueError):
        return None


def _all_pids() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return []


def _carries_marker(pid: int, marker: bytes) -> bool:
    """True when the environment of ``pid`` holds the entry ``marker`` (``NAME=value\\0``)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:  # gone, or another user's process
        return False
    return env.startswith(marker) or b"\0" + marker in env


def kill_marked(value: str, *, var: str = "EVO_RUN_ID", sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to every process whose environment has ``var=value``; returns how many.

    The loop passes ``EVO_RUN_ID`` to every child, so this ends all of a run's evaluations at
    once (a second Ctrl-C), grandchildren included, without knowing their pids.
    """
    marker = f"{var}={value}\0".encode()
    own = {os.getpid(), os.getppid()}
    hit = 0
    for pid in _all_pids():
        if pid not in own and _carries_marker(pid, marker):
            try:
                os.kill(pid, sig)
                hit += 1
            except (ProcessLookupError, PermissionError):
                pass
    return hit


class ProcessTree:
    """Every live process that belongs to one child (see the module docstring)."""

    def __init__(self, root_pid: int, job_id: str):
        self.root = root_pid
        self.marker = f"{MARKER_VAR}={job_id}\0".encode()
        self.known: dict[int, int] = {}  # pid -> start time, for every member ever seen
        self.peak_rss = 0
        self._own = {os.getpid(), os.getppid()}

    def scan(self, *, marker: bool = False) -> list[_Stat]:
        """The live (non-zombie) members now; also remembers them and updates ``peak_rss``.

        Args:
            marker: also read every process's environment for the job marker (slower: used
                when killing, not on every poll).
        """
        stats = {}
        for pid in _all_pids():
            st = _read_stat(pid)
            if st is not None and pid not in self._own:
                stats[pid] = st
        members = {
            pid
            for pid, st in stats.items()
            if st.sid == self.root or st.pgid == self.root or self.known.get(pid) == st.start
        }
        if self.root in stats:
            members.add(self.root)
        if marker:
            members |= {
                pid for pid in stats if pid not in members and _carries_marker(pid, self.marker)
            }
        # Close over descendants: a child forked since the last poll is still in the tree.
        children: dict[int, list[int]] = {}
        for st in stats.values():
            children.setdefault(st.ppid, []).append(st.pid)
        todo = list(members)
        while todo:
            for c in children.get(todo.pop(), ()):
                if c not in members:
                    members.add(c)
                    todo.append(c)
        live = [stats[p] for p in members if not stats[p].zombie]
        for st in live:
            self.known[st.pid] = st.start
        self.peak_rss = max(self.peak_rss, sum(st.rss for st in live))
        return live

    def rss(self) -> int:
        """Resident bytes of the whole tree now."""
        return sum(st.rss for st in self.scan())

    def signal(self, sig: int, *, marker: bool = False) -> int:
        """Send ``sig`` to the process group and to every member; returns how many were hit."""
        try:
            os.killpg(self.root, sig)
        except (ProcessLookupError, PermissionError):
            pass
        hit = 0
        for st in self.scan(marker=marker):
            try:
                os.kill(st.pid, sig)
                hit += 1
            except (ProcessLookupError, PermissionError):
                pass
        return hit

    def kill_all(self, timeout: float = 3.0) -> list[int]:
        """SIGKILL every member until none is left or ``timeout`` passes; returns survivors."""
        deadline = time.monotonic() + timeout
        while True:
            if self.signal(signal.SIGKILL, marker=True) == 0:
                return []
            if time.monotonic() >= deadline:
                return [st.pid for st in self.scan(marker=True)]
            time.sleep(0.02)


class OutputCapture:
    """One output stream of the child: the head on disk (up to ``cap`` bytes), the tail in RAM."""

    def __init__(self, path: Path, cap: int, tail_bytes: int = 4096):
        self.path = path
        self.cap = cap
        self.tail_bytes = tail_bytes
        self.total = 0
        self._tail = bytearray()
        # Unbuffered: every write reaches the file now, so close() never flushes (or fails).
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()

    def feed(self, data: bytes) -> None:
        room = self.cap - self.total
        if room > 0 and not self._file.closed:
            try:
                self._file.write(data[:room])
            except OSError:  # disk full (perhaps by the child): keep the tail, drop the file
                self._file.close()
        self.total += len(data)
        self._tail += data[-self.tail_bytes :]
        del self._tail[: -self.tail_bytes]

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self.total > self.cap:
                self._file.write(
                    f"\n[evo: output capped at {self.cap} bytes; "
                    f"{self.total - self.cap} more bytes discarded]\n".encode()
                )
            self._file.close()
        except OSError:
            pass

    def tail(self, max_lines: int = 40) -> str:
        """The last ``max_lines`` lines (at most ``tail_bytes``) of everything the child wrote."""
        text = self._tail.decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-max_lines:])


def read_regular_file(path: Path, limit: int) -> bytes | None:
    """Bytes of ``path`` if it is a regular file (not a link, FIFO or device); None otherwise.

    The child controls its working dir, so a result or harness path may have been replaced by
    a FIFO or ``/dev/zero`` link meant to hang or flood the reader.

    Raises:
        ValueError: the file is larger than ``limit`` bytes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > limit:
            raise ValueError(f"{info.st_size} bytes, over the {limit}-byte limit")
        chunks, size = [], 0
        while size <= limit:  # bounded even if a surviving process keeps appending
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)[:limit]
    finally:
        os.close(fd)


def signal_name(returncode: int) -> str:
    """``-9`` -> ``SIGKILL``."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
