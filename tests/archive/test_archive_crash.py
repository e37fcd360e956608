"""A writer killed with SIGKILL at random instants never loses a journaled record."""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
from archive_testkit import DIMS, snapshot, subprocess_env

from archive import SCHEMA_VERSION, EliteArchive, RunStore

WRITER = str(Path(__file__).with_name("crash_writer.py"))
TRIALS = 24
TRIALS_PER_RUN = 6  # later trials of a run open a store left by earlier kills


class ForkServer:
    """crash_writer.py, with its stdout drained by a thread so writers never block on it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, WRITER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self) -> str:
        return self.lines.get(timeout=120)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def verify(run: Path, printed: dict[tuple[str, str], tuple[str, str]]) -> None:
    """Every record add() returned for is in the reloaded run, and archive.h5 is readable.

    ``printed`` maps each key to its last record that add() returned for; a key whose newer
    record was journaled but not yet printed at the kill is updated to it.
    """
    with h5py.File(run / "archive.h5", "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert len(f["programs/id"]) == len(f["programs/source"])
    store = RunStore.read(run)
    differ = []
    for key, (status, fitness) in printed.items():
        assert key in store.programs, f"journaled record {key} lost"
        p = store.programs[key]
        if status == "pending":
            continue  # its finished record may have been journaled just before the kill
        if (p.status, repr(p.fitness)) != (status, fitness):
            differ.append(key)
    # Only the record in flight at the kill (journaled, not yet printed) may be newer.
    assert len(differ) <= 1, differ
    if differ:
        last = store.history[-1]
        assert (last.id, last.fidelity) == differ[0]
        # From now on that record is the known state of its key.
        printed[differ[0]] = (last.status, repr(store.programs[differ[0]].fitness))
    for fid in store.fidelities:  # elites agree with the records they come from
        fresh = EliteArchive(dims=DIMS, direction="minimize")
        fresh.rebuild(p for p in store.programs.values() if p.fidelity == fid)
        assert store.elites(fid).elite_ids() == fresh.elite_ids()


def test_sigkill_at_random_instants_never_loses_a_journaled_record(tmp_path):
    rng = random.Random(20240611)
    server = ForkServer()
    checkpoints = torn_checkpoints = mid_checkpoint = 0
    try:
        for trial in range(TRIALS):
            run = tmp_path / f"run{trial // TRIALS_PER_RUN}"
            if trial % TRIALS_PER_RUN == 0:
                RunStore.create(run, dims=DIMS, direction="minimize", meta={"t": trial}).close()
                printed: dict[tuple[str, str], tuple[str, str]] = {}
            server.proc.stdin.write(f"{trial} {rng.randrange(10**6)} {run}\n")
            server.proc.stdin.flush()
            kind, pid = server.next_line().split()
            assert kind == "pid"
            # Kill instants follow the writer's progress, not the clock, so that a slow disk
            # still sees kills everywhere: in open, between adds, and inside checkpoints.
            in_checkpoint = trial % 2 == 1
            # A checkpoint trial's kill follows "c" (checkpoint begun) within 10 ms, well
            # inside a checkpoint on any disk; other trials' kills land anywhere within 40 ms.
            target, seen, killed, finished = rng.randrange(0, 60), 0, False, False
            while not (line := server.next_line()).startswith("done"):
                if line in ("c", "C"):
                    checkpoints += line == "C"
                    finished = killed and line == "C"
                    trigger = in_checkpoint and line == "c"
                else:
                    _, pid_, fid, status, fitness = line.split()
                    printed[(pid_, fid)] = (status, fitness)
                    seen += 1
                    trigger = not in_checkpoint and seen >= target
                if trigger and not killed:
                    time.sleep(rng.uniform(0.0, 0.01 if in_checkpoint else 0.04))
                    os.kill(int(pid), signal.SIGKILL)
                    killed = True
            assert killed, f"the writer of trial {trial} ended by itself"
            mid_checkpoint += in_checkpoint and not finished
            status = int(line.split()[2])
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            torn_checkpoints += any(run.glob(".archive.h5.tmp.*"))
            verify(run, printed)
            if trial % TRIALS_PER_RUN == TRIALS_PER_RUN - 1:
                # A writer resumes the run: it takes the stale lock and cuts the torn tail,
                # and what it holds equals what a reader sees.
                with RunStore.open(run) as w:
                    assert snapshot(w) == snapshot(RunStore.read(run))
                assert not any(run.glob(".archive.h5.tmp.*"))
    finally:
        server.close()
    # Every other trial is killed after a checkpoint began; most of those before it ended.
    assert mid_checkpoint >= TRIALS // 4, (mid_checkpoint, checkpoints)
    print(
        f"{TRIALS} kills, {checkpoints} checkpoints completed, {mid_checkpoint} kills inside "
        f"one, {torn_checkpoints} left a torn temporary file"
    )
