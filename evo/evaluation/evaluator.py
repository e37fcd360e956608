"""Run one untrusted child program in a fresh working dir and say what happened.

``run_job`` is the whole lifecycle: write the child's file and the read-only harness into a
fresh dir, start the command in its own session with an allow-listed environment
(:mod:`evo.evaluation.sandbox`), pump its output into capped files, enforce the timeout (SIGTERM, a grace
period, SIGKILL) and the memory limit, kill every process it left behind, verify the harness
checksums and classify the outcome (:mod:`evo.evaluation.outcome`). It never raises on anything the child
does, and it is safe to call from several threads at once.

The memory limit is enforced by polling the resident memory of the child's whole process tree
(``/proc/PID/stat``) and killing the tree above the limit, not by ``RLIMIT_AS``/``RLIMIT_DATA``:
PyTorch and CUDA reserve far more virtual memory than they touch, so an address-space limit
makes ``import torch`` or CUDA initialisation fail at sizes the program would fit in; an rlimit
is also per process, so a child could escape it by forking workers. The cost of polling is
overshoot between polls (0.1 s), bounded by how fast the child can touch pages.

Example:
    >>> job = EvalJob(argv=["python3", "p.py"], workdir=Path("/tmp/c1"), metric="score",
    ...               files={"p.py": "import json, os\\n"
    ...                      "json.dump({'score': 1.0}, open(os.environ['EVO_RESULT'], 'w'))"})
    >>> run_job(job).status  # doctest: +SKIP
    'ok'
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import selectors
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from evo.evaluation.channel import ResultChannel
from evo.evaluation.isolation import Sandbox, SandboxError, with_sandbox_hint
from evo.evaluation.outcome import classify
from evo.evaluation.sandbox import OutputCapture, ProcessTree, child_environment, read_regular_file
from evo.evaluation.slots import Slot, cpu_count
from evo.target import Target
from operators.errors import ValidationError

RESULT_FILE = "result.json"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
KEPT_FILES = (STDOUT_FILE, STDERR_FILE, RESULT_FILE)
"""What a failed run's working dir keeps after :func:`prune_workdir`."""
GRACE_SECONDS = 2.0
"""Between SIGTERM and SIGKILL when a child runs past its timeout."""
_POLL = 0.05
_HARNESS_LIMIT = 256 << 20


class EvaluatorError(ValueError):
    """A job is unusable before it starts (trusted input: the target, the caller)."""


@dataclass
class EvalJob:
    """Everything needed to run one child once.

    Attributes:
        argv: the command, run with the working dir as cwd.
        workdir: a fresh (missing or empty) directory for this run.
        metric: the fitness key that must be in the result, finite and numeric.
        files: ``name -> content`` written into the working dir (the evolving file): bytes
            as they are, text as UTF-8.
        harness: trusted files copied in read-only (0o444) and checksummed.
        env: extra environment (the fidelity's, plus what the caller passes through).
        timeout: seconds before SIGTERM; SIGKILL follows ``GRACE_SECONDS`` later.
        memory_mb: resident-memory limit for the child's whole process tree; None: none.
        seed: exported as ``EVO_SEED``.
        fidelity: exported as ``EVO_FIDELITY``.
        output_cap_bytes: bytes of stdout and of stderr kept on disk (each).
        sandbox: how the child is isolated (:mod:`evo.evaluation.isolation`); None: no
            sandbox, only evo's environment, process and output limits.
        channel: True when a trusted harness reports the result through the result channel
            (:mod:`evo.evaluation.channel`); False: the program writes ``$EVO_RESULT``.
    """

    argv: list[str]
    workdir: Path
    metric: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    harness: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    memory_mb: int | None = None
    seed: int = 0
    fidelity: str = "default"
    output_cap_bytes: int = 1 << 20
    sandbox: Sandbox | None = None
    channel: bool = False

    def __post_init__(self) -> None:
        if not self.argv:
            raise EvaluatorError("EvalJob.argv is empty; give the command to run")
        if not self.timeout > 0:
            raise EvaluatorError(f"EvalJob.timeout must be > 0 seconds, got {self.timeout}")
        if self.memory_mb is not None and self.memory_mb <= 0:
            raise EvaluatorError(f"EvalJob.memory_mb must be > 0 or None, got {self.memory_mb}")
        names = list(self.files) + [Path(h).name for h in self.harness]
        for name in names:
            if Path(name).name != name or name in (".", "..", "tmp", *KEPT_FILES):
                raise EvaluatorError(
                    f"EvalJob file name {name!r} is not a plain, free file "
                    "name; use a name without '/' that the evaluator does "
                    "not use itself"
                )
        if len(set(names)) != len(names):
            raise EvaluatorError(f"EvalJob files and harness share a name: {sorted(names)}")


@dataclass
class EvalResult:
    """What one run of a child produced.

    Attributes:
        status: ``ok | crash | timeout | oom | nan | invalid_result``.
        metrics: finite numeric values from the result (the fitness metric among them).
        info: everything else from the result, plus ``peak_rss_mb`` and evaluator notes.
        wall_time: seconds from start to exit.
        returncode: the child's exit status (negative: killed by that signal); None if it
            never started.
        stdout_tail, stderr_tail: the last lines of each stream (at most 4 KB).
        reason: one line saying why the status is not ``ok`` (empty when ok).
        workdir: where the run happened (``stdout.log``, ``stderr.log``, ``result.json``).
    """

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0
    returncode: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    reason: str = ""
    workdir: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["workdir"] = str(self.workdir) if self.workdir else None
        return d


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def result_path(workdir: str | Path) -> Path:
    """The child's ``EVO_RESULT``: the result file in the resolved working dir."""
    return Path(workdir).resolve() / RESULT_FILE


def _prepare(job: EvalJob) -> tuple[Path, dict[str, str]]:
    """Create the working dir, write the files, copy the harness read-only; returns checksums."""
    workdir = Path(job.workdir).resolve()
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise EvaluatorError(
            f"{workdir}: the working dir must be new or empty; pick a fresh "
            "path for each evaluation"
        )
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    for name, content in job.files.items():
        if isinstance(content, bytes):
            (workdir / name).write_bytes(content)
        else:
            (workdir / name).write_text(content, encoding="utf-8")
    sums = {}
    for src in map(Path, job.harness):
        if not src.is_file():
            raise EvaluatorError(f"harness file {src} is missing; restore it in the target")
        data = src.read_bytes()
        dst = workdir / src.name
        dst.write_bytes(data)
        dst.chmod(0o444)
        sums[src.name] = _sha256(data)
    return workdir, sums


def _tampered(workdir: Path, sums: dict[str, str]) -> str | None:
    """The first harness file that is missing or changed, or None."""
    for name, digest in sums.items():
        try:
            data = read_regular_file(workdir / name, _HARNESS_LIMIT)
        except ValueError:
            data = None
        if data is None or _sha256(data) != digest:
            return name
    return None


def _exited(pid: int) -> bool:
    """True once ``pid`` has exited, without reaping it.

    The zombie keeps holding its pid, which is also the process group and session id, until
    ``proc.wait()``; so the final kill sweep can never hit a new process that reused the pid.
    """
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when ``pid`` exits (Linux >= 5.3), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _pump(sel: selectors.BaseSelector, timeout: float) -> None:
    """Move whatever output is ready from the pipes into the captures."""
    for key, _ in sel.select(timeout):
        if key.data is None:  # the pidfd: the child exited; _exited() sees it
            continue
        for _ in range(16):  # bounded, so the watchdog runs even under a flood of output
            try:
                data = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                sel.unregister(key.fd)
                break
            key.data.feed(data)


def _supervise(
    proc: subprocess.Popen,
    tree: ProcessTree,
    job: EvalJob,
    sel: selectors.BaseSelector,
    start: float,
) -> str | None:
    """Pump output and enforce the limits until the child exits; returns why we killed it."""
    deadline = start + job.timeout
    limit = job.memory_mb * (1 << 20) if job.memory_mb else None
    scan_every = 0.1 if limit else 0.5  # scans also record descendants before they can hide
    next_scan = start
    killed_for: str | None = None
    kill_at: float | None = None
    while not _exited(proc.pid):
        _pump(sel, _POLL)
        now = time.monotonic()
        if now >= next_scan:
            next_scan = now + scan_every
            if tree.rss() > (limit or float("inf")) and killed_for is None:
                killed_for = "memory"
                tree.signal(signal.SIGKILL)
        if killed_for is None and now >= deadline:
            killed_for = "timeout"
            tree.signal(signal.SIGTERM)
            kill_at = now + GRACE_SECONDS
        if kill_at is not None and now >= kill_at:
            tree.signal(signal.SIGKILL, marker=True)
            kill_at = None
    return killed_for


def run_job(job: EvalJob, slot: Slot | None = None) -> EvalResult:
    """Run ``job`` once on ``slot`` (default: a CPU slot with every core) and classify it.

    Raises:
        EvaluatorError: only for a bad job (working dir not fresh, harness file missing);
            never for anything the child does.
    """
    slot = slot or Slot(index=0, gpu=None, threads=cpu_count())
    workdir, sums = _prepare(job)
    job_id = uuid.uuid4().hex
    info: dict[str, Any] = {}
    try:
        box = (job.sandbox or Sandbox()).on_this_machine()
    except SandboxError as e:
        return EvalResult(status="crash", workdir=workdir, reason=str(e))
    if job.sandbox is not None and job.sandbox.active and not box.active:
        info["sandbox"] = box.describe()  # a Ray node without a working bubblewrap
    env, dropped = child_environment(
        workdir=workdir,
        result_path=None if job.channel else result_path(workdir),
        seed=job.seed,
        fidelity=job.fidelity,
        job_id=job_id,
        threads=slot.threads,
        cuda_visible_devices=slot.cuda_visible_devices,
        extra=job.env,
    )
    if dropped:
        info["dropped_env"] = dropped
    channel = ResultChannel() if job.channel else None
    if channel is not None:
        env.update(channel.env())
    argv = box.wrap(job.argv, workdir=workdir, env=env, memory_mb=job.memory_mb)
    out = OutputCapture(workdir / STDOUT_FILE, job.output_cap_bytes)
    err = OutputCapture(workdir / STDERR_FILE, job.output_cap_bytes)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=channel.child_fds if channel is not None else (),
        )
    except OSError as e:
        out.close()
        err.close()
        if channel is not None:
            channel.close()
        return EvalResult(
            status="crash",
            info=info,
            workdir=workdir,
            reason=f"cannot start {argv[0]!r}: {e.strerror or e}",
        )
    if channel is not None:
        channel.started()
    tree = ProcessTree(proc.pid, job_id)
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPE
    pipes: list[IO[bytes]] = [proc.stdout, proc.stderr]
    for pipe, capture in zip(pipes, (out, err), strict=True):
        os.set_blocking(pipe.fileno(), False)
        sel.register(pipe.fileno(), selectors.EVENT_READ, capture)
    if channel is not None:
        sel.register(channel.result_r, selectors.EVENT_READ, channel)
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:  # wakes the loop the moment the child exits, not at the next poll
        sel.register(pidfd, selectors.EVENT_READ, None)
    killed_for = None
    try:
        killed_for = _supervise(proc, tree, job, sel, start)
    finally:
        wall = time.monotonic() - start
        if pidfd is not None:
            sel.unregister(pidfd)
            os.close(pidfd)
        # Always: whatever the child started is killed, even when it exited cleanly. Only then
        # is the child reaped (see _exited).
        survivors = tree.kill_all()
        proc.wait()
        drain_until = time.monotonic() + 1.0
        while sel.get_map() and time.monotonic() < drain_until:
            _pump(sel, _POLL)
        sel.close()
        for pipe in pipes:
            pipe.close()
        if channel is not None:
            channel.close()
        out.close()
        err.close()
    returncode = proc.returncode
    if box.active and returncode is not None and 128 < returncode <= 128 + 64:
        returncode = 128 - returncode  # bwrap reports a child killed by signal N as 128 + N
    if survivors:
        info["survivors"] = survivors
    info["peak_rss_mb"] = round(tree.peak_rss / (1 << 20), 1)
    status, metrics, extra, reason = classify(
        metric=job.metric,
        returncode=returncode,
        killed_for=killed_for,
        timeout=job.timeout,
        memory_mb=job.memory_mb,
        peak_rss=tree.peak_rss,
        tampered=_tampered(workdir, sums),
        result_path=result_path(workdir),
        stderr_tail=err.tail(),
        channel=channel.result() if channel is not None else None,
    )
    if box.active and status == "crash":
        reason = with_sandbox_hint(reason, workdir)
    return EvalResult(
        status=status,
        metrics=metrics,
        info={**extra, **info},
        wall_time=wall,
        returncode=returncode,
        stdout_tail=out.tail(),
        stderr_tail=err.tail(),
        reason=reason,
        workdir=workdir,
    )


def evaluate_program(
    target: Target,
    source: str,
    *,
    workdir: Path,
    fidelity: str | None = None,
    seed: int = 0,
    slot: Slot | None = None,
    timeout: float | None = None,
    memory_mb: int | None = None,
    extra_env: dict[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> EvalResult:
    """Evaluate ``source`` as ``target``'s evolving file.

    Args:
        target: the loaded target (command, harness, metric, fidelities).
        source: the program's text; the file is written in the seed's form (encoding,
            byte-order mark, line endings: :meth:`Target.file_bytes`). A text that form
            cannot hold is ``invalid_result`` (children are validated against it first).
        workdir: a fresh directory for this evaluation.
        fidelity: a fidelity name; None uses the target's default.
        seed: exported as ``EVO_SEED``.
        slot: where it runs; None: a CPU slot with every core.
        timeout: seconds, overriding the fidelity's timeout.
        memory_mb: resident-memory limit of the child's process tree.
        extra_env: variables passed through on purpose (``TINYGPT_DATA``, ``EVO_*``); they
            override the fidelity's env.
        sandbox: how the child is isolated; None: no sandbox. A target that opts into the
            network (``network = true``) gets it whatever the sandbox says.

    Raises:
        TargetError: ``fidelity`` is not one of the target's.
        EvaluatorError: the working dir is not fresh or a harness file is missing.
    """
    fid = target.fidelity(fidelity)
    try:
        content = target.file_bytes(source)
    except ValidationError as e:
        return EvalResult(status="invalid_result", reason=f"{target.evolve}: {e}")
    job = EvalJob(
        argv=target.argv(fid),
        workdir=Path(workdir),
        metric=target.metric,
        files={Path(target.evolve).name: content},
        harness=target.harness_paths(),
        env={**fid.env, **(extra_env or {})},
        timeout=timeout or fid.timeout,
        memory_mb=memory_mb,
        seed=seed,
        fidelity=fid.name,
        sandbox=sandbox.with_network() if sandbox is not None and target.network else sandbox,
        channel=target.result == "channel",
    )
    return run_job(job, slot)


@dataclass(frozen=True)
class EvalCall:
    """One evaluation as plain, picklable data: what a backend runs on a slot, in a local
    thread or on a Ray worker. Calling it with a slot runs :func:`evaluate_program`."""

    target: Target
    source: str
    workdir: Path
    fidelity: str | None = None
    seed: int = 0
    timeout: float | None = None
    memory_mb: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    sandbox: Sandbox | None = None

    def __call__(self, slot: Slot | None) -> EvalResult:
        return evaluate_program(
            self.target,
            self.source,
            workdir=self.workdir,
            fidelity=self.fidelity,
            seed=self.seed,
            slot=slot,
            timeout=self.timeout,
            memory_mb=self.memory_mb,
            extra_env=self.extra_env,
            sandbox=self.sandbox,
        )


def prune_workdir(path: Path | None, keep_logs: bool) -> None:
    """After a run: keep a failed run's logs (not its files); drop a successful run's dir."""
    if path is None or not path.exists():
        return
    if not keep_logs:
        remove_workdir(path)
        return
    for entry in path.iterdir():
        if entry.name not in KEPT_FILES:
            if entry.is_dir() and not entry.is_symlink():
                remove_workdir(entry)
            else:
                entry.unlink(missing_ok=True)


def remove_workdir(path: Path) -> None:
    """Delete a child's working dir even if the child made parts of it read-only."""

    def _unlock(d: Path) -> None:
        d.chmod(0o700)  # a child may have chmod-ed its dirs to 0o000
        for entry in d.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                _unlock(entry)

    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        _unlock(path)
        shutil.rmtree(path)
