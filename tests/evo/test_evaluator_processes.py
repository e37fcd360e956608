"""run_job against children that misbehave as processes: hangs, escapes, memory, output floods."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from evo.evaluation.evaluator import GRACE_SECONDS, run_job
from evo.evaluation.sandbox import kill_marked
from tests.evo.evaluator_helpers import make_job


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for init to reap it counts as dead)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def wait_for_pids(path: Path, n: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(x) for x in path.read_text().split()]
            if len(pids) >= n:
                return pids
        time.sleep(0.02)
    raise AssertionError(f"{path} never listed {n} pids")


def test_infinite_loop_times_out(tmp_path):
    t0 = time.monotonic()
    r = run_job(make_job(tmp_path, "while True:\n    pass\n", timeout=1.0))
    assert r.status == "timeout" and r.reason == "timeout after 1 s"
    assert 1.0 <= r.wall_time < 1.0 + GRACE_SECONDS
    assert time.monotonic() - t0 < 5


def test_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    t0 = time.monotonic()
    r = run_job(
        make_job(
            tmp_path,
            """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
        while True:
            time.sleep(0.1)
    """,
            timeout=1.0,
        )
    )
    elapsed = time.monotonic() - t0
    assert r.status == "timeout" and r.returncode == -9
    assert elapsed < 1.0 + GRACE_SECONDS + 1.0
    assert r.wall_time >= 1.0 + GRACE_SECONDS - 0.2  # SIGTERM really was ignored
    assert r.stdout_tail == "ignoring SIGTERM"


def test_grandchildren_are_killed_when_the_child_exits(tmp_path):
    pid_file = tmp_path / "pids.txt"
    r = run_job(
        make_job(
            tmp_path,
            f"""
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
        plain = subprocess.Popen(sleeper)  # same process group, inherits stdout
        # Double fork + setsid: a new session, reparented to init once the middle one exits.
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, sleeper)
            os._exit(0)
        os.wait()
        # A grandchild in its own session with the job marker scrubbed from its environment,
        # started while the child is still alive (the scan that tracks descendants sees it).
        env = {{k: v for k, v in os.environ.items() if k != "EVO_JOB_ID"}}
        hidden = subprocess.Popen(sleeper, start_new_session=True, env=env)
        time.sleep(1.0)
        with open({str(pid_file)!r}, "w") as f:
            f.write(f"{{plain.pid}} {{hidden.pid}}")
        report({{"score": 1.0}})
    """,
        )
    )
    assert r.status == "ok", r.reason
    pids = [int(x) for x in pid_file.read_text().split()]
    assert "survivors" not in r.info
    assert not [p for p in pids if alive(p)]
    # The double-forked one never told us its pid: look for anything still in the workdir.
    assert not _processes_in(tmp_path)


def _processes_in(tmp_path: Path) -> list[int]:
    """Live processes whose working dir is inside this test's tmp dir (any child's leftovers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not alive(int(entry.name)):
            continue
        try:
            cwd = str((entry / "cwd").resolve())
        except OSError:
            continue
        if cwd.startswith(str(tmp_path.resolve())):
            found.append(int(entry.name))
    return found


def test_grandchild_left_running_after_a_timeout_dies_too(tmp_path):
    pid_file = tmp_path / "pids.txt"
    job = make_job(
        tmp_path,
        f"""
        import signal
        p = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"],
            start_new_session=True)
        open({str(pid_file)!r}, "w").write(str(p.pid))
        time.sleep(60)
    """,
        timeout=1.0,
    )
    r = run_job(job)
    assert r.status == "timeout"
    pids = wait_for_pids(pid_file, 1)
    assert not alive(pids[0])


def test_allocation_past_the_memory_limit_is_oom(tmp_path):
    r = run_job(
        make_job(
            tmp_path,
            """
        chunks = []
        for _ in range(60):  # up to 3 GB, 50 MB at a time
            chunks.append(b"x" * 50_000_000)
            time.sleep(0.01)
        report({"score": 1.0})
    """,
            memory_mb=300,
        )
    )
    assert r.status == "oom"
    assert r.reason.startswith("killed: memory limit 300 MB")
    assert r.info["peak_rss_mb"] > 300
    assert r.wall_time < 5


def test_memory_limit_counts_the_whole_process_tree(tmp_path):
    r = run_job(
        make_job(
            tmp_path,
            """
        hog = ("import time\\nchunks = []\\n"
               "for _ in range(60):\\n    chunks.append(b'x' * 50_000_000); time.sleep(0.01)\\n"
               "time.sleep(30)")
        subprocess.run([sys.executable, "-c", hog])
        report({"score": 1.0})
    """,
            memory_mb=300,
        )
    )
    assert r.status == "oom" and "memory limit 300 MB" in r.reason


def test_torch_runs_under_a_memory_limit(tmp_path):
    # RLIMIT_AS at this size would break `import torch`; the RSS watcher does not.
    r = run_job(
        make_job(
            tmp_path,
            """
        import torch
        x = torch.randn(256, 256)
        report({"score": float((x @ x).abs().mean())})
    """,
            memory_mb=1024,
            timeout=60,
        )
    )
    assert r.status == "ok", r.reason + r.stderr_tail
    assert 0 < r.info["peak_rss_mb"] < 1024


def test_100_mb_of_output_is_capped_and_the_run_goes_on(tmp_path):
    cap = 1 << 20
    t0 = time.monotonic()
    r = run_job(
        make_job(
            tmp_path,
            """
        line = b"y" * 999 + b"\\n"
        block = line * 1000
        for _ in range(100):  # 100 MB on stdout
            sys.stdout.buffer.write(block)
        sys.stderr.write("e" * 5_000_000 + "\\nlast stderr line\\n")
        sys.stdout.flush()
        print("last stdout line")
        report({"score": 1.0})
    """,
            output_cap_bytes=cap,
        )
    )
    assert r.status == "ok", r.reason
    assert time.monotonic() - t0 < 20
    out = tmp_path / "w" / "stdout.log"
    err = tmp_path / "w" / "stderr.log"
    assert cap < out.stat().st_size < cap + 200
    assert cap < err.stat().st_size < cap + 200
    assert out.read_text().endswith("more bytes discarded]\n")
    assert r.stdout_tail.endswith("last stdout line")
    assert r.stderr_tail.endswith("last stderr line")
    assert len(r.stdout_tail) <= 4096


def test_result_written_then_hang_is_a_timeout(tmp_path):
    r = run_job(make_job(tmp_path, "report({'score': 1.0})\ntime.sleep(60)\n", timeout=1.0))
    assert r.status == "timeout"
    assert json.loads((tmp_path / "w" / "result.json").read_text()) == {"score": 1.0}


def test_a_tree_of_forked_sleepers_is_killed_on_timeout(tmp_path):
    pid_file = tmp_path / "pids.txt"
    r = run_job(
        make_job(
            tmp_path,
            f"""
        pids = []
        for i in range(20):
            pid = os.fork()
            if pid == 0:
                if i % 2:
                    os.setsid()
                if os.fork() == 0:  # and each one has a child of its own
                    time.sleep(60)
                    os._exit(0)
                time.sleep(60)
                os._exit(0)
            pids.append(pid)
        with open({str(pid_file)!r}, "w") as f:
            f.write(" ".join(map(str, pids)))
        time.sleep(60)
    """,
            timeout=1.0,
        )
    )
    assert r.status == "timeout"
    pids = wait_for_pids(pid_file, 20)
    assert not [p for p in pids if alive(p)]
    assert not _processes_in(tmp_path)


def test_kill_marked_ends_every_child_of_one_run_only(tmp_path):
    pid_file = tmp_path / "pids.txt"
    job = make_job(
        tmp_path,
        f"""
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             start_new_session=True)
        open({str(pid_file)!r}, "w").write(str(p.pid))
        time.sleep(60)
    """,
        env={"EVO_RUN_ID": "run-a"},
        timeout=30,
    )
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={"EVO_RUN_ID": "run-a-but-longer", "PATH": "/usr/bin"},
    )
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run_job, job)
        grandchild = wait_for_pids(pid_file, 1)[0]
        t0 = time.monotonic()
        assert kill_marked("run-a") == 2  # the child and its grandchild
        r = future.result(timeout=10)
    assert time.monotonic() - t0 < 5
    assert r.returncode == -9 and not alive(grandchild)
    assert alive(other.pid)  # another run's marker is a different entry
    other.kill()
    other.wait()
