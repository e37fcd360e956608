"""The Ray backend on a real local Ray instance (2 CPUs), started once for the module."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import ray

import evo
from archive import RunStore
from evo.evaluation.backends import BackendError, make_backend
from evo.evaluation.evaluator import EvalCall, EvaluatorError
from evo.evaluation.ray_backend import RayBackend
from evo.evaluation.slots import LocalBackend
from evo.target import load_target
from tests.evo.evaluator_helpers import sandbox_for_tests
from tests.evo.loop_helpers import FIXTURE, REPO, runs_in_store, search_config

# The evolving file of a target that records who ran it. Each child writes its pid, its
# parent's pid and the parent's command line; it then waits until the test has picked a victim
# (written to $RAYTEST_DIR/victim). The victim waits on, as a long evaluation would, until it is
# killed: only the backend's cleanup can end it before the test does.
PROGRAM = """\
import json, os, time

X = 3.0
Y = -2.0

d = os.environ["RAYTEST_DIR"]
ppid = os.getppid()
with open(f"/proc/{ppid}/cmdline", "rb") as f:
    parent = f.read().replace(b"\\0", b" ").decode(errors="replace")
tmp = os.path.join(d, f"{os.getpid()}.tmp")
with open(tmp, "w") as f:
    json.dump({"pid": os.getpid(), "ppid": ppid, "parent": parent}, f)
os.rename(tmp, os.path.join(d, f"{os.getpid()}.pid"))
victim = os.path.join(d, "victim")
t0 = time.monotonic()
while time.monotonic() - t0 < 90:
    if os.path.exists(victim) and open(victim).read() != str(os.getpid()):
        break
    time.sleep(0.02)
with open(os.environ["EVO_RESULT"], "w") as f:
    json.dump({"loss": (X - 1.0) ** 2 + (Y + 0.5) ** 2}, f)
"""

TARGET_TOML = """\
name = "recorder"
evolve = "prog.py"
metric = "loss"
timeout = 120

[ranges]
X = [-4.0, 4.0]
Y = [-4.0, 4.0]
"""


@pytest.fixture(scope="module")
def backend():
    """One local Ray instance with 2 CPUs for the whole module; later backends share it."""
    sigterm = signal.getsignal(signal.SIGTERM)
    b = RayBackend(workers=2)
    yield b
    b.shutdown()
    assert not ray.is_initialized()  # the last user stopped the instance it started
    assert signal.getsignal(signal.SIGTERM) == sigterm  # ray.init's handler is gone again


def _config(
    target: Path, run_dir: Path, evaluations: int, pass_env: list[str], sandbox: str = "auto"
) -> dict:
    return search_config(
        target, run_dir, evaluations, run={"pass_env": pass_env}, sandbox={"kind": sandbox}
    )


def _dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slots_follow_the_workers_and_cpus(backend):
    assert len(backend.slots) == 2
    assert backend.gpus_per_task == 0.0 and backend.cpus_per_task == 1
    assert all(s.gpu is None and s.threads == 1 for s in backend.slots)
    assert ray.cluster_resources()["CPU"] >= 2


def test_search_on_ray_completes_the_budget_like_the_local_backend(backend, tmp_path):
    summaries = {}
    for name, b in (("local", None), ("ray", backend)):
        cfg = _config(FIXTURE, tmp_path / name, 20, [])
        summaries[name] = evo.Search(cfg, backend=b, progress=False).run()
        runs = runs_in_store(tmp_path / name)
        assert len(runs) == 20 and len(set(runs)) == 20, name
    local, on_ray = summaries["local"], summaries["ray"]
    assert on_ray.evaluations == local.evaluations == 20
    for name in summaries:  # a program the budget cut short between its seeds stays pending
        store = RunStore.read(tmp_path / name)
        assert {r.status for p in store.programs.values() for r in p.runs} == {"ok"}, name
        assert set(summaries[name].by_status) <= {"ok", "pending"}, name
    assert on_ray.seed_fitness == local.seed_fitness == pytest.approx(13.5625)
    assert on_ray.best_fitness is not None and on_ray.best_fitness <= on_ray.seed_fitness
    assert backend.free_slots() == 2  # nothing left in flight


def test_a_killed_worker_is_requeued_and_its_child_killed(backend, tmp_path, monkeypatch):
    target = tmp_path / "recorder"
    target.mkdir()
    (target / "prog.py").write_text(PROGRAM)
    (target / "target.toml").write_text(TARGET_TOML)
    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setenv("RAYTEST_DIR", str(records))
    picked: dict = {}

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = sorted(records.glob("*.pid"))
            if pids:
                picked.update(json.loads(pids[0].read_text()))
                (records / "victim.tmp").write_text(str(picked["pid"]))
                os.rename(records / "victim.tmp", records / "victim")
                os.kill(picked["ppid"], signal.SIGKILL)  # the Ray worker running the child
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    # No sandbox: the children record their host pids and parents outside their working dirs
    # (inside bubblewrap they could not, and the killed worker's sandbox dies with it anyway).
    summary = evo.Search(
        _config(target, run_dir, 12, ["RAYTEST_DIR"], sandbox="none"),
        backend=backend,
        progress=False,
    ).run()
    killer.join(timeout=5)
    assert picked, "no child ever started"
    assert "ray::" in picked["parent"]  # the child ran under a Ray worker, not the driver
    # The victim would wait 90 s; the backend killed it before reporting the loss.
    assert _dead(picked["pid"]) and time.monotonic() - t0 < 60
    assert summary.evaluations == 12
    store = RunStore.read(run_dir)
    assert {r.status for p in store.programs.values() for r in p.runs} == {"ok"}
    runs = runs_in_store(run_dir)
    assert len(runs) == 12 and len(set(runs)) == 12  # nothing lost, nothing run twice
    log = (run_dir / "evo.log").read_text()
    assert log.count("lost by the backend") == 1 and "WorkerCrashedError" in log
    assert "killed 1 processes a lost Ray task left running" in log
    assert "could not clean up" not in log
    parents = [json.loads(p.read_text())["parent"] for p in records.glob("*.pid")]
    assert len(parents) == 13  # 12 evaluations plus the lost one
    assert all("ray::" in p for p in parents)


def test_ray_workers_run_children_in_the_sandbox(backend, tmp_path):
    box = sandbox_for_tests(required=True)  # skipped without bubblewrap, failed under CI
    folder = tmp_path / "pid"
    folder.mkdir()
    (folder / "target.toml").write_text('evolve = "p.py"\nmetric = "pid"\n')
    (folder / "p.py").write_text(
        "import json, os\njson.dump({'pid': os.getpid()}, open(os.environ['EVO_RESULT'], 'w'))\n"
    )
    target = load_target(folder)
    call = EvalCall(target, target.seed_source(), tmp_path / "w", sandbox=box)
    result = backend.submit(call).result(timeout=60)
    assert result.ok, result.reason
    assert result.metrics["pid"] == 2  # its own PID namespace: bubblewrap's init is pid 1


def test_cleanup_tasks_kill_marked_processes_on_the_nodes(backend, tmp_path):
    marker = str(tmp_path / "result.json")
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "EVO_RESULT": marker},
        start_new_session=True,
    )
    try:
        assert backend.kill_on_nodes(marker + "-other", var="EVO_RESULT") == 0
        assert sleeper.poll() is None
        assert backend.kill_on_nodes(marker, var="EVO_RESULT") == 1  # by a task on the node
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_task_that_raises_fails_its_future(backend, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("not fresh")  # the evaluator refuses a non-empty working dir
    target = load_target(FIXTURE)
    fut = backend.submit(EvalCall(target, target.seed_source(), busy))
    error = fut.exception(timeout=60)
    assert isinstance(error, EvaluatorError)  # Ray's error is also an instance of the cause
    assert "working dir must be new or empty" in str(error)
    ok = backend.submit(EvalCall(target, target.seed_source(), tmp_path / "fresh"))
    assert ok.result(timeout=60).metrics["loss"] == pytest.approx(13.5625)


def test_gpus_asked_on_a_cpu_cluster_is_an_error(backend):
    with pytest.raises(BackendError, match="has no GPUs but gpus_per_task=1") as e:
        RayBackend(gpus_per_task=1)
    assert "\n" not in str(e.value)
    with pytest.raises(BackendError, match="cpus_per_task=64 is more than any node"):
        RayBackend(cpus_per_task=64)
    with pytest.raises(BackendError, match="workers must be >= 1"):
        RayBackend(workers=0)
    assert ray.is_initialized()  # the failed backends left the shared instance running


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_address_fails_fast(backend, scheme):
    address = f"{scheme}127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=f"backend.address '{address}'") as e:
        RayBackend(address=address)
    assert time.monotonic() - t0 < 20
    assert "\n" not in str(e.value)
    with pytest.raises(BackendError, match="is not host:port"):
        RayBackend(address="no-port-here")


CLUSTER_DRIVER = """
import json, sys, time
from pathlib import Path
from evo.evaluation.evaluator import EvalCall
from evo.evaluation.backends import BackendError
from evo.evaluation.ray_backend import RayBackend
from evo.target import load_target
address, fixture, workdir = sys.argv[1:]
deadline = time.monotonic() + 40
while True:  # the head node's GCS listens a moment before its raylet has registered
    try:
        b = RayBackend(address=address)
        break
    except BackendError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
target = load_target(Path(fixture))
result = b.submit(EvalCall(target, target.seed_source(), Path(workdir))).result(timeout=60)
b.shutdown()
again = RayBackend(address=address)  # the cluster outlives a driver's shutdown
print(json.dumps({"slots": len(b.slots), "status": result.status, "again": len(again.slots)}))
again.shutdown()
"""


def test_a_running_cluster_is_used_by_address_and_left_running(backend, tmp_path):
    port = _closed_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # what "install evo on every node" means here
    # Ray's socket paths must stay under 108 bytes: pytest's tmp_path is too deep for them.
    ray_tmp = tempfile.mkdtemp(prefix="evo-ray-")
    head_log = tmp_path / "head.log"
    with open(head_log, "wb") as log:
        head = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "ray"),
                "start",
                "--head",
                "--block",
                f"--port={port}",
                "--num-cpus=1",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={ray_tmp}",
            ],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CLUSTER_DRIVER,
                f"127.0.0.1:{port}",
                str(FIXTURE),
                str(tmp_path / "child"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:] + head_log.read_text()[-2000:]
        assert json.loads(out.stdout.splitlines()[-1]) == {"slots": 1, "status": "ok", "again": 1}
    finally:
        # Every process of this head node is in its session (never `ray stop`: it would stop
        # every Ray instance on the machine).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
        # SIGKILL is asynchronous: a killed raylet can still be listed (exiting, not yet reaped
        # by init) for a moment after the head itself has been waited for.
        deadline = time.monotonic() + 10
        while True:
            left = [
                pid
                for pid in os.listdir("/proc")
                if pid.isdigit() and ray_tmp.encode() in _cmdline(int(pid)) and not _dead(int(pid))
            ]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert left == [], [_cmdline(int(p))[:300] for p in left]


def test_make_backend_picks_the_kind(backend):
    local = make_backend("local", workers=2)
    assert isinstance(local, LocalBackend) and len(local.slots) == 2
    local.shutdown()
    shared = make_backend("ray", workers=1, address="")
    assert isinstance(shared, RayBackend) and len(shared.slots) == 1
    shared.shutdown()
    assert ray.is_initialized()  # the module's backend still uses the instance
    with pytest.raises(BackendError, match="backend.kind 'slurm' is unknown"):
        make_backend("slurm")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
