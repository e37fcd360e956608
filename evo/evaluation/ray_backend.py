"""The Ray backend: the same evaluator as a Ray task, on a local Ray instance or a cluster.

The driver keeps the loop, the archive and the journal; only the :class:`~evo.evaluation.evaluator.EvalCall`
(plain data) travels to a worker, which builds its slot there (the GPU Ray assigned, the task's
CPUs as threads) and runs the evaluation. ``submit`` returns a ``concurrent.futures.Future``, so
the loop waits on Ray tasks exactly as on local threads. A task whose worker or node died
fails its Future: the loop re-queues that run.

A worker killed outright (SIGKILL, the kernel's OOM killer, a dead raylet) cannot kill the
child it started: the evaluator starts children in their own session. So before a failed
Future reports the loss, the backend kills every process whose ``EVO_WORKDIR`` is the call's
working dir (unique per evaluation) on the driver's node and, through a zero-CPU task pinned to
each live node, on every other node. The loop may then safely reuse the run's working dir.

On a cluster, evo and the target's dependencies must be installed on every node, and the
target folder must be at the same path (a shared filesystem): the harness is copied from the
driver's path. The working dir is created on the node that runs the child.

Example:
    >>> backend = RayBackend(workers=2)  # doctest: +SKIP
    >>> evo.Search(cfg, backend=backend).run()  # doctest: +SKIP
    >>> backend.shutdown()  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evo.evaluation.backends import BackendError
from evo.evaluation.evaluator import EvalCall, EvalResult
from evo.evaluation.ray_connect import (
    check_reachable,
    one_line,
    restore_sigterm,
    sigterm_handler,
    use_token_if_any,
)
from evo.evaluation.sandbox import WORKDIR_VAR, kill_marked
from evo.evaluation.slots import Slot, cpu_count

log = logging.getLogger("evo")

PROBE_TIMEOUT = 60.0
"""Seconds a cluster has to show that its workers can import evo."""
CLEANUP_TIMEOUT = 15.0
"""Seconds to wait for the per-node kill of a lost task's leftover processes."""

# One local Ray instance per process, shared by the RayBackends made without an address; the
# last of them to shut down stops it. An instance someone else started is never stopped.
_instance_lock = threading.Lock()
_instance_users = 0
_instance_ours = False
_sigterm_before: Any = None  # ray.init installs its own SIGTERM handler; restored at the end


@dataclass(frozen=True)
class RaySlot(Slot):
    """A slot built on a Ray worker: ``devices`` is what Ray assigned (``CUDA_VISIBLE_DEVICES``).

    Ray may assign several GPUs (``gpus_per_task > 1``) or name them by UUID, which a plain
    :class:`~evo.evaluation.slots.Slot` (one integer GPU) cannot say.
    """

    devices: str = ""

    @property
    def cuda_visible_devices(self) -> str:
        return self.devices


def _evaluate_on_worker(call: EvalCall, threads: int) -> EvalResult:
    """The Ray task: build the slot from what Ray gave this worker and run the evaluation."""
    import ray

    ids = [str(i) for i in ray.get_gpu_ids()]
    gpu = int(ids[0]) if ids and ids[0].isdigit() else None
    return call(RaySlot(index=0, gpu=gpu, threads=threads, devices=",".join(ids)))


def _import_evaluator() -> str:
    """The probe task: what a worker must import to run an evaluation."""
    import evo.evaluation.evaluator

    return evo.evaluation.evaluator.__name__


def _kill_on_node(value: str, var: str) -> int:
    """The cleanup task: kill this node's processes carrying ``var=value``."""
    return kill_marked(value, var=var)


class RayBackend:
    """Runs evaluations as Ray tasks, one slot per GPU (``num_gpus``) or per CPU worker.

    Args:
        address: None starts a local Ray instance (or shares the one this process already
            has); ``"auto"``, ``"host:port"`` or ``"ray://host:port"`` connects to a running
            cluster (``ray://`` needs ``pip install 'ray[client]'``).
        workers: parallel evaluations; None: one per GPU slot, else one per ``cpus_per_task``
            CPUs of the cluster. A local instance is sized to run them all at once.
        gpus_per_task: GPUs per evaluation; None: 1 when the cluster has GPUs, else 0. Above
            0 on a cluster without GPUs is an error.
        cpus_per_task: CPUs per evaluation, also the child's thread count; None: CPU tasks
            share the cores (``cores // workers``, at least 1), GPU tasks share each node's
            CPUs among its GPU slots.

    Attributes:
        slots: one :class:`~evo.evaluation.slots.Slot` per parallel evaluation (the loop sizes itself by
            ``len(slots)``); on Ray the worker picks the actual GPU, so ``gpu`` here is only
            the slot's ordinal when it has one.

    Raises:
        BackendError: a bad setting, an unreachable address, no running cluster for
            ``"auto"``, GPUs asked on a cluster without any, or a task that fits no node.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_task: float | None = None,
        cpus_per_task: int | None = None,
    ):
        if workers is not None and workers < 1:
            raise BackendError(f"backend.workers must be >= 1 for Ray, got {workers}")
        if gpus_per_task is not None and gpus_per_task < 0:
            raise BackendError(f"gpus_per_task must be >= 0, got {gpus_per_task}")
        if cpus_per_task is not None and cpus_per_task < 1:
            raise BackendError(f"cpus_per_task must be >= 1, got {cpus_per_task}")
        try:
            import ray
        except ImportError:
            raise BackendError(
                "backend.kind = 'ray' needs Ray: pip install 'evo-search[ray]' (or pip install ray)"
            ) from None
        self._ray = ray
        self.address = address or None
        self._connected = False
        self._sigterm: Any = None
        self._connect(workers, cpus_per_task)
        try:
            self._size(workers, gpus_per_task, cpus_per_task)
        except BaseException:
            self._disconnect()
            raise
        self._task = ray.remote(
            num_cpus=self.cpus_per_task,
            num_gpus=self.gpus_per_task,
            max_retries=0,
            # The GPU is used by the child process, not the worker: keep workers alive between
            # tasks (Ray's default for GPU tasks is a fresh worker each time).
            max_calls=0,
        )(_evaluate_on_worker)
        self._cleanup = ray.remote(num_cpus=0, max_retries=0)(_kill_on_node)
        self._lock = threading.Lock()
        self._in_flight: dict[cf.Future, Any] = {}
        self._janitor = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="evo-ray-lost")
        self._closed = False

    # ---- connecting ----------------------------------------------------------------------

    def _connect(self, workers: int | None, cpus_per_task: int | None) -> None:
        global _instance_users, _instance_ours
        ray = self._ray
        if self.address is not None:
            check_reachable(self.address)
            if ray.is_initialized():
                raise BackendError(
                    f"backend.address {self.address!r}: this process is already "
                    "connected to a Ray instance; shut the other backend down "
                    "first, or leave the address empty to share it"
                )
            use_token_if_any()
            handler = sigterm_handler()
            try:
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                restore_sigterm(handler)
                raise BackendError(
                    f"backend.address {self.address!r}: cannot connect to Ray: "
                    f"{one_line(e)} (a cluster with token authentication "
                    "needs its token in ~/.ray/auth_token or RAY_AUTH_TOKEN)"
                ) from None
            self._sigterm = handler
            self._connected = True
            try:
                self._probe()
            except BaseException:
                self._disconnect()
                raise
            return
        with _instance_lock:
            if not ray.is_initialized():
                global _sigterm_before
                _sigterm_before = sigterm_handler()
                cores = cpu_count()
                need = workers * (cpus_per_task or 1) if workers else cores
                ray.init(
                    num_cpus=max(cores, need),
                    include_dashboard=False,
                    logging_level=logging.ERROR,
                    log_to_driver=False,
                )
                _instance_ours = True
            _instance_users += 1
        self._connected = True

    def _disconnect(self) -> None:
        global _instance_users, _instance_ours
        if not self._connected:
            return
        self._connected = False
        if self.address is not None:
            self._ray.shutdown()  # a driver's disconnect: the cluster itself runs on
            restore_sigterm(self._sigterm)
            return
        with _instance_lock:
            _instance_users -= 1
            if _instance_users == 0 and _instance_ours:
                self._ray.shutdown()
                _instance_ours = False
                restore_sigterm(_sigterm_before)

    def _probe(self) -> None:
        """A cluster's workers must import evo (it is not shipped): say so before any run."""
        ray = self._ray
        ref = ray.remote(num_cpus=0, max_retries=0)(_import_evaluator).remote()
        try:
            ray.get(ref, timeout=PROBE_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            log.warning(
                "%s: no worker answered within %.0f s; evaluations wait for one",
                self.address,
                PROBE_TIMEOUT,
            )
        except Exception as e:
            raise BackendError(
                f"backend.address {self.address!r}: a Ray worker there cannot "
                f"import evo ({one_line(e)}); install evo-search and the "
                "target's dependencies on every node"
            ) from None

    # ---- sizing --------------------------------------------------------------------------

    def _size(
        self, workers: int | None, gpus_per_task: float | None, cpus_per_task: int | None
    ) -> None:
        """Set ``gpus_per_task``, ``cpus_per_task`` and ``slots`` from the live nodes."""
        nodes = [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]
        where = self.address or "the local Ray instance"
        gpu_nodes = [(r.get("CPU", 0.0), r.get("GPU", 0.0)) for r in nodes if r.get("GPU", 0) > 0]
        if gpus_per_task is None:
            gpus_per_task = 1.0 if gpu_nodes else 0.0
        if gpus_per_task > 0:
            if not gpu_nodes:
                raise BackendError(
                    f"{where} has no GPUs but gpus_per_task={gpus_per_task:g} "
                    "asks for them; start the cluster on GPU nodes, or set "
                    "gpus_per_task to 0 for CPU evaluations"
                )
            per_node = [(cpus, int(gpus // gpus_per_task)) for cpus, gpus in gpu_nodes]
            capacity = sum(k for _, k in per_node)
            if capacity == 0:
                raise BackendError(
                    f"gpus_per_task={gpus_per_task:g} is more than any node of "
                    f"{where} has; lower it"
                )
            n = min(workers, capacity) if workers else capacity
            if cpus_per_task is None:
                cpus_per_task = max(1, min(int(c // k) for c, k in per_node if k))
        else:
            cpus = [r.get("CPU", 0.0) for r in nodes]
            if cpus_per_task is None:
                share = int(sum(cpus) // workers) if workers else 1
                cpus_per_task = max(1, min(share, int(max(cpus, default=0))))
            capacity = sum(int(c // cpus_per_task) for c in cpus)
            if capacity == 0:
                raise BackendError(
                    f"cpus_per_task={cpus_per_task} is more than any node of "
                    f"{where} has ({max(cpus, default=0):g} CPUs); lower it"
                )
            n = workers or capacity
            if n > capacity:  # GPU workers are capped at capacity above
                log.warning(
                    "%s runs %d evaluations at once, not the %d workers asked for; the "
                    "others wait in Ray's queue",
                    where,
                    capacity,
                    n,
                )
        self.gpus_per_task = float(gpus_per_task)
        self.cpus_per_task = int(cpus_per_task)
        self.slots = [
            Slot(index=i, gpu=i if gpus_per_task > 0 else None, threads=self.cpus_per_task)
            for i in range(n)
        ]

    # ---- the backend protocol ------------------------------------------------------------

    def submit(self, call: EvalCall) -> cf.Future[EvalResult]:
        """Run ``call`` as a Ray task; the Future holds its EvalResult, or the error that lost
        it (``WorkerCrashedError``, ``NodeDiedError``, ...) once its leftovers are killed."""
        if self._closed:
            raise RuntimeError("cannot submit to a RayBackend after shutdown")
        ref = self._task.remote(call, self.cpus_per_task)
        outer: cf.Future[EvalResult] = cf.Future()
        outer.set_running_or_notify_cancel()  # Ray owns it now: cancel through shutdown()
        with self._lock:
            self._in_flight[outer] = ref
        ref.future().add_done_callback(lambda inner: self._settle(outer, inner, call))
        return outer

    def _settle(self, outer: cf.Future, inner: cf.Future, call: EvalCall) -> None:
        """Runs in Ray's callback thread: hand the result on, or clean up and report a loss."""
        error = (
            cf.CancelledError("the Ray task was cancelled")
            if inner.cancelled()
            else inner.exception()
        )
        if error is None:
            self._finish(outer, result=inner.result())
            return
        # Killing leftovers may wait on cleanup tasks: never block Ray's callback thread.
        try:
            self._janitor.submit(self._lost, outer, error, call)
        except RuntimeError:  # the janitor is shut down: nothing waits for this any more
            self._finish(outer, error=error)

    def _lost(self, outer: cf.Future, error: BaseException, call: EvalCall) -> None:
        try:
            killed = self.kill_leftovers(call)
            if killed:
                log.warning("killed %d processes a lost Ray task left running", killed)
        finally:
            self._finish(outer, error=error)

    def _finish(
        self, outer: cf.Future, *, result: Any = None, error: BaseException | None = None
    ) -> None:
        with self._lock:
            self._in_flight.pop(outer, None)
        if error is None:
            outer.set_result(result)
        else:
            outer.set_exception(error)

    def kill_leftovers(self, call: EvalCall) -> int:
        """Kill every process of ``call``'s child on every live node, then on the driver's
        machine (a ``ray://`` driver is no node); returns how many were hit. The marker is the
        child's ``EVO_WORKDIR``, unique per evaluation."""
        return self.kill_everywhere(str(Path(call.workdir).resolve()), var=WORKDIR_VAR)

    def kill_everywhere(self, value: str, *, var: str) -> int:
        """Kill the processes carrying ``var=value`` on every live node and on the driver's
        machine; returns how many."""
        return self.kill_on_nodes(value, var=var) + kill_marked(value, var=var)

    def kill_on_nodes(self, value: str, *, var: str) -> int:
        """Kill the processes carrying ``var=value`` on every live node, through a zero-CPU
        task pinned to each (it runs even when every CPU is taken); returns how many."""
        ray = self._ray
        if not ray.is_initialized():
            return 0
        hit = 0
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            refs = [
                self._cleanup.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(
                        node_id=n["NodeID"], soft=False
                    )
                ).remote(value, var)
                for n in ray.nodes()
                if n.get("Alive")
            ]
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=CLEANUP_TIMEOUT)
            for ref in done:
                try:
                    hit += ray.get(ref)
                except Exception:  # that node died too: so did its processes
                    pass
        except Exception as e:  # cleanup must never hide the loss itself
            log.warning("could not clean up a lost Ray task on every node: %s", one_line(e))
        return hit

    def free_slots(self) -> int:
        """Slots not taken by a submitted evaluation that has not finished yet."""
        with self._lock:
            return max(0, len(self.slots) - len(self._in_flight))

    def shutdown(self, wait: bool = True, cancel: bool = False) -> None:
        """Stop accepting work; ``cancel`` kills the running tasks (their Futures fail),
        ``wait`` waits for every Future. Stops the local Ray instance when this is its last
        user; a cluster given by address only loses this driver."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            pending = dict(self._in_flight)
        if cancel:
            for ref in pending.values():
                self._ray.cancel(ref, force=True)
        if wait:
            cf.wait(list(pending))
        self._janitor.shutdown(wait=wait)
        self._disconnect()

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)


__all__ = ["RayBackend", "RaySlot"]
