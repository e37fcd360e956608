"""The run lock with real processes: a live holder, a dead holder, racers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from archive_testkit import DIMS, make_program, subprocess_env

from archive import LockError, RunStore
from archive.lock import RunLock, read_holder

HOLDER = str(Path(__file__).with_name("lock_holder.py"))


@pytest.fixture
def run(tmp_path: Path) -> Path:
    # No program yet: opening it builds no pyribs archive, so holders start in ~0.5 s.
    RunStore.create(tmp_path / "run", dims=DIMS, direction="minimize", meta={}).close()
    return tmp_path / "run"


def start_holder(run: Path, mode: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, HOLDER, str(run), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    line = proc.stdout.readline().split()
    assert line[:1] == ["locked"], line
    return proc, int(line[1])


def test_a_live_holder_blocks_writers_but_not_readers(run):
    proc, pid = start_holder(run, "hold")
    try:
        assert read_holder(run)["pid"] == str(pid)
        before = (run / "lock").read_bytes()
        with pytest.raises(
            LockError, match=rf"{run} is locked by pid {pid} \(alive.*stop it or wait"
        ):
            RunStore.open(run)
        with pytest.raises(LockError, match=f"pid {pid}"):
            RunLock.acquire(run)
        assert (run / "lock").read_bytes() == before  # the loser changed nothing
        assert RunStore.read(run).evaluations == 0  # readers never wait for the lock
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Killed: the kernel dropped its flock and its pid is gone, so the lock is stale.
    with RunStore.open(run) as s:
        assert read_holder(run)["pid"] == str(os.getpid())
        s.add(make_program(2))
    assert not (run / "lock").exists()


def test_a_dead_holders_stale_lock_is_taken_over(run):
    proc, pid = start_holder(run, "exit")
    proc.wait()
    assert read_holder(run)["pid"] == str(pid)  # left behind by a process that is gone
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with RunStore.open(run) as s:
        assert read_holder(run)["pid"] == str(os.getpid())
        assert s.add(make_program(3, status="ok")).status in ("new", "improved", "not_added")


def test_a_recycled_pid_does_not_keep_a_stale_lock(run):
    # Our own pid is alive, but it is not the process that wrote this lock: its kernel start
    # time differs, and nobody holds the flock.
    (run / "lock").write_text(
        f"pid={os.getpid()}\nhost={socket.gethostname()}\n"
        "started=2020-01-01T00:00:00\nproc_start=1\n"
    )
    with RunStore.open(run):
        assert read_holder(run)["proc_start"] != "1"


def test_a_lock_from_another_host_is_never_stolen(run):
    (run / "lock").write_text("pid=1\nhost=gpu-node-7\nstarted=2020-01-01T00:00:00\n")
    with pytest.raises(LockError, match="on host gpu-node-7; stop it there, or delete"):
        RunStore.open(run)


def test_racers_for_a_stale_lock_have_exactly_one_winner(run):
    proc, _ = start_holder(run, "exit")
    proc.wait()
    start_at = time.time() + 1.5  # after every racer has imported archive
    racers = [
        subprocess.Popen(
            [sys.executable, HOLDER, str(run), "race", str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        for _ in range(3)
    ]
    results = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert results == ["lost", "lost", "won"]
