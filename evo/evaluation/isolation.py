"""Isolation of one child with bubblewrap (``bwrap``): what it may see, write and reach.

:func:`resolve_sandbox` turns ``[sandbox] kind`` into a :class:`Sandbox` once at the start of a
run, probing bubblewrap on this machine; :meth:`Sandbox.wrap` prefixes a child's command so
that, inside the sandbox:

* the whole filesystem is read-only; the working dir is the one writable place, and ``/tmp``
  and ``/dev/shm`` are private (empty, in memory, gone when the evaluation ends);
* the user's home directories, the run dir and the other evaluations' working dirs are hidden
  (empty); the interpreter, its site-packages, ``sys.path`` and the paths the child's own
  environment names (``PATH``, ``LD_LIBRARY_PATH``, ``TINYGPT_DATA`` ...) stay visible,
  read-only, as do the paths in ``[sandbox] read``;
* there is no network (its own network namespace with only loopback) unless the run or the
  target opts in;
* the evaluation has its own PID namespace: when its first process exits, the kernel kills
  every process it started (``setsid``, double fork, an empty environment change nothing);
* no capabilities, even when evo runs as root, so nothing can be remounted writable;
* the GPU device nodes (``/dev/nvidia*``, ``/dev/dri``) are passed through, so CUDA works.

Where bubblewrap is missing or cannot make namespaces (a container without user namespaces),
``kind = "auto"`` runs children as before, with one warning; ``kind = "bwrap"`` is an error.
Option semantics follow bubblewrap's manual, ``bwrap(1)``
(https://github.com/containers/bubblewrap/blob/main/bwrap.xml).

Example:
    >>> box, warning = resolve_sandbox("none")
    >>> box.wrap(["python3", "p.py"], workdir=Path("/tmp/c1"), env={})
    ['python3', 'p.py']
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pwd
import re
import shutil
import site
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

KINDS = ("auto", "bwrap", "none")
"""``[sandbox] kind`` values: probe and fall back, require bubblewrap, or no sandbox."""

WRITABLE_CACHE_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
"""Compile caches a user shares between evaluations on purpose: bound read-write when set."""

INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install bubblewrap)"

_PROBE_TIMEOUT = 20.0
_probe_cache: dict[tuple[str, bool], str | None] = {}
_probe_lock = threading.Lock()
_size_cache: dict[str, bool] = {}


class SandboxError(ValueError):
    """The sandbox asked for cannot run here; the message names the setting and what to do."""


def _homes() -> list[str]:
    """The user's home directories (``$HOME`` and the password entry's), never ``/``."""
    out = []
    for home in (os.environ.get("HOME", ""), _pw_home()):
        if home and os.path.isabs(home):
            home = os.path.realpath(home)
            if home != "/" and home not in out and os.path.isdir(home):
                out.append(home)
    return out


def _pw_home() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return ""


def _under(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or inside it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


_FS_ERRORS = ("No such file or directory", "Read-only file system", "Permission denied")
SANDBOX_HINT = (
    " (the sandbox hides home dirs and the run dir, and only the working dir is writable;"
    ' name a data path in sandbox.read, or set sandbox.kind = "none")'
)


def with_sandbox_hint(reason: str, workdir: str | Path) -> str:
    """``reason`` with :data:`SANDBOX_HINT` appended when it is a file-system error on an
    absolute path outside ``workdir`` (what the sandbox hides or makes read-only).

    Example:
        >>> with_sandbox_hint("FileNotFoundError: [Errno 2] No such file or directory: "
        ...                   "'/home/me/data.csv'", "/runs/r/children/c1").endswith('"none")')
        True
        >>> with_sandbox_hint("FileNotFoundError: [Errno 2] No such file or directory: "
        ...                   "'/runs/r/children/c1/out.txt'", "/runs/r/children/c1")[-8:]
        "out.txt'"
    """
    if not any(e in reason for e in _FS_ERRORS):
        return reason
    root = os.path.realpath(workdir)
    paths = re.findall(r"'(/[^']*)'", reason)
    if any(not _under(os.path.normpath(p), root) for p in paths):
        return reason + SANDBOX_HINT
    return reason


def _interpreter_paths() -> list[str]:
    """What a child interpreter needs: prefixes, site-packages and ``sys.path`` entries."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    try:
        paths += site.getsitepackages()
    except AttributeError:  # virtualenv's old site.py
        pass
    paths += [p for p in sys.path if p and os.path.isabs(p)]
    return paths


def _env_paths(env: dict[str, str]) -> list[str]:
    """Absolute paths named by the child's environment (``PATH``, ``TINYGPT_DATA`` ...), not
    evo's own variables (``EVO_RUN_DIR`` names the run dir, which stays hidden)."""
    out = []
    for name, value in env.items():
        if name in ("HOME", "TMPDIR", "PWD") or name.startswith("EVO_"):
            continue  # the working dir's own, or evo's protocol (the run dir stays hidden)
        for part in value.split(os.pathsep):
            if os.path.isabs(part):
                out.append(part)
    return out


@dataclass(frozen=True)
class Sandbox:
    """How children are isolated; plain data, so it travels to Ray workers.

    Attributes:
        kind: ``"bwrap"`` or ``"none"`` (resolved; ``"auto"`` is decided by
            :func:`resolve_sandbox`).
        network: True lets the child use the network (the host's network namespace).
        read: extra absolute paths kept visible, read-only, inside hidden dirs.
        hide: absolute dirs the child sees empty (the run dir).
        required: True when the run asked for bubblewrap explicitly (``kind = "bwrap"``): a
            node where it does not work fails the evaluation instead of running it bare.
        executable: the ``bwrap`` binary (found on ``PATH`` when empty).
        reason: why the sandbox is ``none`` when bubblewrap was wanted (empty otherwise).
    """

    kind: str = "none"
    network: bool = False
    read: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    required: bool = False
    executable: str = ""
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.kind == "bwrap"

    def describe(self) -> str:
        """One line for the log and ``environment.json``."""
        if not self.active:
            return f"none ({self.reason})" if self.reason else "none"
        return "bubblewrap, " + ("network allowed" if self.network else "no network")

    def with_hidden(self, *dirs: str | Path) -> Sandbox:
        """This sandbox, also hiding ``dirs`` (e.g. the run dir) from every child."""
        extra = tuple(str(Path(d).resolve()) for d in dirs)
        return dataclasses.replace(self, hide=self.hide + extra)

    def with_network(self) -> Sandbox:
        """This sandbox with the network allowed (a target that opts in)."""
        return dataclasses.replace(self, network=True)

    def on_this_machine(self) -> Sandbox:
        """This sandbox as it can run here (a Ray worker may lack bubblewrap).

        Raises:
            SandboxError: bubblewrap is required but does not work on this machine.
        """
        if not self.active:
            return self
        exe = shutil.which(self.executable or "bwrap") or ""
        why = probe(exe, self.network) if exe else "bwrap is not on PATH"
        if why is None:
            return self if exe == self.executable else dataclasses.replace(self, executable=exe)
        if self.required:
            raise SandboxError(
                f"sandbox.kind = 'bwrap' but bubblewrap does not work on this machine "
                f"({why}); {INSTALL_HINT} or set sandbox.kind = 'auto'"
            )
        return Sandbox(kind="none", network=self.network, reason=f"bubblewrap: {why}")

    def wrap(
        self,
        argv: list[str],
        *,
        workdir: Path,
        env: dict[str, str],
        memory_mb: int | None = None,
    ) -> list[str]:
        """``argv`` run inside the sandbox, with ``workdir`` writable and its cwd.

        Args:
            argv: the child's command.
            workdir: the evaluation's working dir (absolute, existing).
            env: the child's environment; absolute paths it names stay visible.
            memory_mb: caps the private ``/tmp`` and ``/dev/shm`` (each); None: tmpfs default
                (half of RAM).

        Returns:
            ``argv`` unchanged when the sandbox is ``none``, else the bwrap command line.
        """
        if not self.active:
            return list(argv)
        opts = self.options(workdir=workdir, env=env, memory_mb=memory_mb, argv0=argv[0])
        return [*opts, "--", *argv]

    def options(
        self,
        *,
        workdir: Path,
        env: dict[str, str],
        memory_mb: int | None = None,
        argv0: str = "",
    ) -> list[str]:
        """The bwrap command line up to (not including) ``--`` and the child's argv."""
        work = os.path.realpath(workdir)
        exe = self.executable or "bwrap"
        args = [exe, "--die-with-parent", "--new-session"]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--cap-drop", "ALL"]
        if not self.network:
            args.append("--unshare-net")
        size = ["--size", str(memory_mb << 20)] if memory_mb and _has_size_option(exe) else []
        args += ["--ro-bind", "/", "/", *size, "--tmpfs", "/tmp"]
        hidden = ["/tmp", *_homes()]
        for home in hidden[1:]:
            args += ["--tmpfs", home]
        # Paths the child needs that a hidden dir covers come back, read-only.
        needed = _interpreter_paths() + _env_paths(env) + list(self.read)
        found = shutil.which(argv0, path=env.get("PATH")) if argv0 else None
        if found:  # another interpreter (a conda env): its whole prefix, not only bin/
            bindir = os.path.dirname(os.path.realpath(found))
            needed.append(os.path.dirname(bindir) if bindir.endswith("/bin") else bindir)
        shown: list[str] = []
        for path in sorted({os.path.realpath(p) for p in needed if os.path.exists(p)}):
            if not any(_under(path, h) for h in hidden) or any(_under(h, path) for h in hidden):
                continue  # visible anyway, or showing it would undo the hiding
            if any(_under(path, s) for s in shown) or _under(work, path):
                continue
            shown.append(path)
            args += ["--ro-bind", path, path]
        # The run dir and the sibling evaluations: hidden, unless that hides what is needed.
        read_only = hidden[1:]
        for d in sorted({os.path.realpath(d) for d in [*self.hide, os.path.dirname(work)]}):
            if d == "/" or not os.path.isdir(d) or any(_under(s, d) for s in shown):
                continue  # (a Ray node may not have the driver's run dir at all)
            if any(_under(d, h) for h in hidden) and not any(_under(d, s) for s in shown):
                continue  # already hidden by /tmp or a home dir
            args += ["--tmpfs", d]
            read_only.append(d)
        for name in WRITABLE_CACHE_VARS:
            cache = env.get(name, "")
            if cache and os.path.isabs(cache) and os.path.isdir(cache):
                args += ["--bind", cache, cache]
        args += ["--bind", work, work]
        for d in read_only:  # empty and read-only: a write there fails instead of vanishing
            if not _under(d, "/tmp"):
                args += ["--remount-ro", d]
        args += ["--dev", "/dev", *size, "--tmpfs", "/dev/shm"]
        for node in sorted(glob.glob("/dev/nvidia*")) + ["/dev/dri"]:
            if os.path.exists(node):
                args += ["--dev-bind", node, node]
        args += ["--proc", "/proc", "--chdir", work]
        return args


def _has_size_option(executable: str) -> bool:
    """True when this bwrap has ``--size`` (0.7 and later), which caps a tmpfs."""
    with _probe_lock:
        if executable not in _size_cache:
            try:
                text = subprocess.run(
                    [executable, "--help"], capture_output=True, text=True, timeout=10
                ).stdout
            except (OSError, subprocess.SubprocessError):
                text = ""
            _size_cache[executable] = "--size" in text
        return _size_cache[executable]


def probe(executable: str, network: bool = False) -> str | None:
    """None when bubblewrap runs a child here as :meth:`Sandbox.wrap` would, else why not.

    Runs this interpreter inside the sandbox once (about 30 ms) and caches the answer per
    process, so a run and each Ray worker probe once.
    """
    key = (executable, network)
    with _probe_lock:
        if key not in _probe_cache:
            _probe_cache[key] = _probe(executable, network)
        return _probe_cache[key]


def _probe(executable: str, network: bool) -> str | None:
    box = Sandbox(kind="bwrap", network=network, executable=executable)
    with tempfile.TemporaryDirectory(prefix="evo-sandbox-probe-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        env = {"PATH": os.environ.get("PATH", os.defpath)}
        argv = box.wrap(
            [sys.executable, "-c", "open('probe', 'w').write('ok')"], workdir=work, env=env
        )
        try:
            proc = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False
            )
        except (OSError, subprocess.SubprocessError) as e:
            return f"cannot run {executable}: {e}"
        if proc.returncode != 0 or not (work / "probe").is_file():
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            return lines[-1].strip() if lines else f"exit status {proc.returncode}"
    return None


def _unusable_reads(read: tuple[str, ...]) -> str | None:
    """One warning line naming the ``sandbox.read`` entries that show nothing: a path that
    does not exist, or one that is (or holds) a dir the sandbox hides, which is never shown
    whole; None when every entry is usable."""
    hidden = ["/tmp", *_homes()]
    bad = []
    for p in read:
        real = os.path.realpath(p)
        if not os.path.exists(real):
            bad.append(f"{p} does not exist")
        elif any(_under(h, real) for h in hidden):
            bad.append(f"{p} is or holds a hidden dir and is not shown; name what is inside it")
    return "sandbox.read: " + "; ".join(bad) if bad else None


def resolve_sandbox(
    kind: str,
    *,
    network: bool = False,
    read: list[str] | tuple[str, ...] = (),
    executable: str | None = None,
) -> tuple[Sandbox, str | None]:
    """The sandbox ``[sandbox] kind`` asks for on this machine, and a warning line if any.

    Args:
        kind: ``"auto"`` (bubblewrap when it works here, else none and a warning),
            ``"bwrap"`` (bubblewrap or an error) or ``"none"``.
        network: let children use the network.
        read: extra absolute paths kept visible (read-only) inside hidden dirs.
        executable: the bwrap binary; None: ``bwrap`` on ``PATH``.

    Raises:
        SandboxError: ``kind`` is unknown, or ``"bwrap"`` and bubblewrap does not work here.
    """
    if kind not in KINDS:
        raise SandboxError(f"sandbox.kind {kind!r} is unknown; use one of {list(KINDS)}")
    read = tuple(str(p) for p in read)
    if kind == "none":
        return Sandbox(kind="none", network=network, read=read), None
    exe = shutil.which(executable or "bwrap") or ""
    why = probe(exe, network) if exe else "bwrap is not on PATH"
    if why is None:
        box = Sandbox(
            kind="bwrap", network=network, read=read, required=kind == "bwrap", executable=exe
        )
        return box, _unusable_reads(read)
    if kind == "bwrap":
        raise SandboxError(
            f"sandbox.kind = 'bwrap' but bubblewrap does not work here ({why}); "
            f"{INSTALL_HINT} or set sandbox.kind = 'auto'"
        )
    warning = (
        f"no sandbox: bubblewrap does not work here ({why}); children run with evo's "
        f"process and environment limits only (no filesystem or network isolation); "
        f"{INSTALL_HINT}, or set sandbox.kind = 'none' to silence this"
    )
    return Sandbox(kind="none", network=network, read=read, reason=f"bubblewrap: {why}"), warning


__all__ = ["KINDS", "Sandbox", "SandboxError", "probe", "resolve_sandbox"]
