"""Slots and the local backend, with real child processes for the concurrency test."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from evo.evaluation.evaluator import EvalJob, run_job
from evo.evaluation.slots import LocalBackend, Slot, SlotError, cpu_count, make_slots, visible_gpus


def test_cpu_slots_split_the_cores_without_oversubscribing():
    cores = cpu_count()
    for workers in (1, 2, 3, cores, cores + 2):
        slots = make_slots(workers, gpus=[])
        assert [s.index for s in slots] == list(range(workers))
        assert all(s.gpu is None and s.cuda_visible_devices == "" for s in slots)
        assert all(s.threads == max(1, cores // workers) for s in slots)
        if workers <= cores:
            assert sum(s.threads for s in slots) <= cores
    default = make_slots(gpus=[])
    assert len(default) == cores and all(s.threads == 1 for s in default)


def test_gpu_slots_one_per_gpu():
    cores = cpu_count()
    slots = make_slots(gpus=[0, 1, 2])
    assert [(s.index, s.gpu, s.cuda_visible_devices) for s in slots] == [
        (0, 0, "0"),
        (1, 1, "1"),
        (2, 2, "2"),
    ]
    assert all(s.threads == max(1, cores // 3) for s in slots)
    assert [s.gpu for s in make_slots(2, gpus=[4, 5, 6])] == [4, 5]
    assert len(make_slots(8, gpus=[4, 5])) == 2  # never two children on one GPU


def test_bad_worker_counts_are_refused():
    with pytest.raises(SlotError, match="workers must be >= 1"):
        make_slots(0, gpus=[])
    with pytest.raises(SlotError, match="at least one slot"):
        LocalBackend([])


def test_visible_gpus_respects_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpus() == [3, 5]
    assert [s.gpu for s in make_slots()] == [3, 5]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,-1,4")
    assert visible_gpus() == [2]  # CUDA stops at the first invalid entry
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f2c")
    with pytest.raises(SlotError, match="CUDA_VISIBLE_DEVICES='GPU-8f2c'"):
        visible_gpus()


def test_local_backend_runs_four_children_on_two_slots(tmp_path):
    slots = make_slots(2, gpus=[])
    lock = threading.Lock()
    spans: list[tuple[float, float, int]] = []
    free_seen: list[int] = []

    def job(i: int):
        def run(slot: Slot):
            t0 = time.monotonic()
            r = run_job(
                EvalJob(
                    argv=[
                        sys.executable,
                        "-c",
                        "import json, os, time; time.sleep(0.6); "
                        "json.dump({'score': float(os.environ['OMP_NUM_THREADS'])}, "
                        "open(os.environ['EVO_RESULT'], 'w'))",
                    ],
                    workdir=tmp_path / f"c{i}",
                    metric="score",
                ),
                slot,
            )
            with lock:
                spans.append((t0, time.monotonic(), slot.index))
            return r

        return run

    backend = LocalBackend(slots)
    t0 = time.monotonic()
    futures = [backend.submit(job(i)) for i in range(4)]
    free_seen.append(backend.free_slots())
    results = [f.result(timeout=30) for f in futures]
    total = time.monotonic() - t0
    backend.shutdown()
    assert free_seen == [0]
    assert backend.free_slots() == 2
    assert [r.status for r in results] == ["ok"] * 4
    assert all(r.metrics["score"] == slots[0].threads for r in results)
    # Two at a time: the total is about two rounds, well under four sequential runs.
    serial = sum(end - start for start, end, _ in spans)
    assert total < 0.8 * serial
    events = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    running, peak = 0, 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2
    for idx in (0, 1):  # one child per slot at a time
        mine = sorted((s, e) for s, e, i in spans if i == idx)
        assert all(a[1] <= b[0] for a, b in zip(mine, mine[1:], strict=False))


def test_local_backend_cancel_frees_the_slots():
    backend = LocalBackend(make_slots(1, gpus=[]))
    gate = threading.Event()
    first = backend.submit(lambda slot: gate.wait(10))
    queued = [backend.submit(lambda slot: slot.index) for _ in range(3)]
    assert backend.free_slots() == 0
    backend.shutdown(wait=False, cancel=True)
    gate.set()
    assert first.result(timeout=10) is True
    assert all(f.cancelled() for f in queued)
    assert backend.free_slots() == 1
    with pytest.raises(RuntimeError):
        backend.submit(lambda slot: 0)
    assert backend.free_slots() == 1


def test_local_backend_passes_exceptions_through_the_future():
    with LocalBackend(make_slots(2, gpus=[])) as backend:
        fut = backend.submit(lambda slot: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            fut.result(timeout=10)
        assert backend.submit(lambda slot: slot.threads).result(timeout=10) >= 1
        assert backend.free_slots() == 2
