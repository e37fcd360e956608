"""Local evaluation slots: one per visible GPU, else CPU slots that share the cores evenly.

A slot is where one child runs at a time. The local backend is a thread pool with one thread
per slot; each submitted job is handed the slot it runs on, so the evaluator can pin the child
to that slot's GPU (``CUDA_VISIBLE_DEVICES``) and thread count (``OMP_NUM_THREADS`` ...).

Example:
    >>> slots = make_slots(2, gpus=[])
    >>> backend = LocalBackend(slots)
    >>> backend.submit(lambda slot: slot.index).result() in (0, 1)
    True
    >>> backend.shutdown()
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class SlotError(ValueError):
    """The requested slots cannot be made; the message names the setting to change."""


@dataclass(frozen=True)
class Slot:
    """One place a child runs: a GPU (or none) and a thread budget.

    Attributes:
        index: position of the slot, 0-based.
        gpu: the GPU index exported as ``CUDA_VISIBLE_DEVICES``; None for a CPU slot.
        threads: intra-op threads the child may use (``OMP_NUM_THREADS`` and friends).
    """

    index: int
    gpu: int | None
    threads: int

    @property
    def cuda_visible_devices(self) -> str:
        """The child's ``CUDA_VISIBLE_DEVICES``: empty on a CPU slot so no GPU is ever grabbed."""
        return "" if self.gpu is None else str(self.gpu)


def cpu_count() -> int:
    """Cores this process may run on (respects taskset/cpusets, unlike ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def visible_gpus() -> list[int]:
    """GPU indices this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``.

    Raises:
        SlotError: ``CUDA_VISIBLE_DEVICES`` lists something other than integer indices.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        items = [s.strip() for s in env.split(",") if s.strip()]
        # CUDA stops at the first invalid entry; "-1" is the usual way to hide every GPU.
        out: list[int] = []
        for s in items:
            if not s.lstrip("-").isdigit():
                raise SlotError(
                    f"CUDA_VISIBLE_DEVICES={env!r}: only integer GPU indices are "
                    "supported; use indices, or pass the GPUs to use explicitly"
                )
            if int(s) < 0:
                break
            out.append(int(s))
        return out
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run(
            [smi, "-L"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return list(range(sum(1 for line in listing.splitlines() if line.startswith("GPU "))))


def make_slots(workers: int | None = None, *, gpus: list[int] | None = None) -> list[Slot]:
    """The local slots: one per GPU when there are GPUs, else ``workers`` CPU slots.

    Threads are split so the slots together never use more threads than there are cores:
    ``threads = max(1, cores // slots)``. Without GPUs ``workers`` defaults to one slot per
    core with one thread each: the small CPU fidelities (tinygpt ``tiny``) are sized for one
    core, and independent children scale better than threads inside one small model.

    Args:
        workers: how many slots; with GPUs, at most one per GPU (extra workers are ignored).
        gpus: GPU indices to use; None detects them (``visible_gpus``); ``[]`` forces CPU slots.

    Raises:
        SlotError: ``workers`` is below 1.
    """
    if workers is not None and workers < 1:
        raise SlotError(f"workers must be >= 1, got {workers}")
    cores = cpu_count()
    gpu_list = visible_gpus() if gpus is None else list(gpus)
    if gpu_list:
        chosen = gpu_list[:workers] if workers else gpu_list
        threads = max(1, cores // len(chosen))
        return [Slot(index=i, gpu=g, threads=threads) for i, g in enumerate(chosen)]
    n = workers if workers is not None else cores
    threads = max(1, cores // n)
    return [Slot(index=i, gpu=None, threads=threads) for i in range(n)]


class LocalBackend:
    """Runs callables on local slots, at most one per slot at a time.

    ``submit(fn)`` returns a Future of ``fn(slot)``. The pool has exactly one thread per slot,
    so a thread that starts a job always finds a free slot.
    """

    def __init__(self, slots: list[Slot]):
        if not slots:
            raise SlotError("LocalBackend needs at least one slot")
        self.slots = list(slots)
        self._free: queue.SimpleQueue[Slot] = queue.SimpleQueue()
        for s in self.slots:
            self._free.put(s)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._pool = ThreadPoolExecutor(max_workers=len(self.slots), thread_name_prefix="evo-slot")

    def submit(self, fn: Callable[[Slot], T]) -> Future[T]:
        """Run ``fn(slot)`` on the next free slot; the Future holds its return value."""
        with self._lock:
            self._in_flight += 1
        try:
            future = self._pool.submit(self._run, fn)
        except BaseException:
            self._done_one()
            raise
        # A cancelled job never reaches _run, so it is taken off the count here instead.
        future.add_done_callback(lambda f: f.cancelled() and self._done_one())
        return future

    def _done_one(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _run(self, fn: Callable[[Slot], T]) -> T:
        slot = self._free.get()
        try:
            return fn(slot)
        finally:
            self._free.put(slot)
            # Decrement before the Future completes so a caller woken by it sees the slot free.
            self._done_one()

    def free_slots(self) -> int:
        """Slots not taken by a submitted job that has not finished yet."""
        with self._lock:
            return max(0, len(self.slots) - self._in_flight)

    def shutdown(self, wait: bool = True, cancel: bool = False) -> None:
        """Stop accepting jobs; ``cancel`` drops queued jobs, running ones finish on their own."""
        self._pool.shutdown(wait=wait, cancel_futures=cancel)

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)
