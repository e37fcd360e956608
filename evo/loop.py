"""The search loop: steady state, every slot busy, budgets honoured, resumable after a crash.

One thread (the caller's) owns the archive: it proposes children, dispatches evaluation runs to
the backend's slots, and tells the archive each result. Evaluations run in worker threads (each
supervising one child process). While the slots are busy the loop prepares the next children,
so a freed slot never waits for an operator.

Durability: a child is journaled as ``pending`` before it is dispatched, and again after every
seed run; a crash at any instant loses at most the runs in flight, which a resumed run
re-queues. Every run of every program counts towards ``run.evaluations``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import os
import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive import (
    FAILED,
    NOT_PLACED,
    PENDING,
    Program,
    RunStore,
    SeedRun,
    failure_reasons,
    remeasurement_runs,
)
from evo.cascade import Cascade, CascadeError
from evo.config import resolve_target_path, search_fingerprint, to_toml
from evo.emitter import emitter_summary
from evo.environment import describe
from evo.evaluation import (
    EvalCall,
    EvalResult,
    SandboxError,
    cap_artifacts,
    kill_marked,
    make_backend,
    prune_workdir,
    remove_workdir,
    resolve_sandbox,
)
from evo.interrupts import Interrupts
from evo.niches import archive_dims, descriptors_for
from evo.noise import NoiseGate
from evo.openevolve_config import notices as openevolve_notices
from evo.policy import first_parent
from evo.progress import Progress
from evo.proposals import PROPOSE_TRIES, Proposer
from evo.rundir import (
    FileLog,
    RunError,
    RunSummary,
    fmt,
    load_counters,
    merge_usage,
    open_run_dir,
    report_fidelity,
    save_counters,
    summary_dict,
    write_json,
)
from evo.target import Target, load_target
from evo.trackers import Trackers, open_trackers
from operators import OperatorConfigError, ValidationError, canonical_hash

log = logging.getLogger("evo")

CHECKPOINT_SECONDS = 300.0
STORE_COUNTS = ("evaluated", "new", "improved", *FAILED, "rejected")
"""Per-operator counts the store can tell, rebuilt from it on resume (see _rebuild_counts)."""
MAX_LOST = 3  # a run the backend loses this often is recorded as a crash


@dataclass
class _Work:
    program: Program
    seed_index: int
    why: str = ""  # why a run after the program's first is made (SeedRun.why)


class Search:
    """One run of the search over ``cfg`` (a resolved config from :func:`evo.config.load_config`).

    Example:
        >>> from evo.config import load_config
        >>> Search(load_config(overrides={"run.evaluations": 8})).run()  # doctest: +SKIP
    """

    def __init__(
        self, cfg: dict, *, force_new: bool = False, progress: bool = True, backend: Any = None
    ):
        self.cfg = cfg
        run = cfg["run"]
        self.target: Target = load_target(resolve_target_path(run["target"])).with_space(
            cfg["ranges"], cfg["choices"]
        )
        default = self.target.fidelity(run["fidelity"] or None).name
        self.run_dir = Path(run["run_dir"] or Path("runs") / self.target.name)
        self.seed_source = self.target.seed_source()
        self.seed_id = canonical_hash(self.seed_source)
        self.op_stats: dict[str, Counter] = {}
        box = cfg["sandbox"]
        try:  # probed once, before anything starts: kind = "bwrap" without bubblewrap stops here
            sandbox, warning = resolve_sandbox(
                box["kind"], network=box["network"], read=box["read"]
            )
        except SandboxError as e:
            raise RunError(str(e)) from None
        self.sandbox = sandbox.with_hidden(self.run_dir)
        self.sandbox_warning = warning
        self._own_backend = backend is None
        if backend is None:  # last: a Ray backend starts (or joins) a cluster
            b = cfg["backend"]
            backend = make_backend(
                b["kind"],
                workers=b["workers"] or None,
                address=b["address"] or None,
                gpus_per_task=b["gpus_per_task"] or None,
                cpus_per_task=b["cpus_per_task"] or None,
            )
        self.backend = backend
        self.slots = list(backend.slots)
        try:
            self.cascade = Cascade(
                cfg["cascade"], list(self.target.fidelities), default, len(self.slots)
            )
            self.fidelity = self.cascade.base  # the search runs here; promotions go up
            self.proposer = Proposer(
                cfg,
                self.target,
                self.fidelity,
                self.op_stats,
                self.seed_source,
                self.seed_id,
                run_dir=self.run_dir,
            )
            self.dims = archive_dims(self.target, self.seed_source, cfg["archive"])
        except CascadeError as e:
            self._release_backend()
            raise RunError(f"{self.target.root / 'target.toml'}: {e}") from None
        except (OperatorConfigError, ValidationError) as e:
            self._release_backend()
            raise RunError(f"{self._blame(e)}: {e}") from None
        except BaseException:
            self._release_backend()
            raise
        self.force_new = force_new
        self._stored_failure = False  # the seed failed before this process opened the run
        self.show_progress = progress
        self.run_id = uuid.uuid4().hex
        self.gates = {
            lvl: NoiseGate(self.target, lvl, self.seed_id, cfg["noise"], self._describe)
            for lvl in self.cascade.levels
        }
        self._scheduled: dict[
            tuple[str, str], int
        ] = {}  # runs done + queued + in flight, per program
        self._runs_done: int | None = None
        self._children_cost: float | None = None  # LLM dollars of every child in the store
        self._stop_reason = ""
        self.interrupts = Interrupts()
        self._last_checkpoint = time.monotonic()
        self._run_marker = str(self.run_dir.resolve())
        self._losses: dict[tuple[str, str, int], int] = {}
        self._usage_before: dict = {}  # LLM usage of earlier processes of this run
        self._parked: list[Program] = []  # runs done, waiting for the seed's noise verdict
        self.trackers: Trackers | None = None  # opened when the run starts

    # ---- run directory -------------------------------------------------------------------

    def _open_store(self) -> RunStore:
        meta = {
            "target": self.target.name,
            "target_root": str(self.target.root),
            "fidelity": self.fidelity,
            "levels": self.cascade.levels,
            "metric": self.target.metric,
            "direction": self.target.direction,
            "fingerprint": search_fingerprint(self.cfg),
            "checksums": self.target.checksums(),
            "seed_id": self.seed_id,
        }
        return open_run_dir(
            self.run_dir,
            meta,
            dims=self.dims,
            direction=self.target.direction,
            z=self.cfg["noise"]["z"],
            force_new=self.force_new,
            cfg=self.cfg,
        )

    # ---- the loop ------------------------------------------------------------------------

    def run(self) -> RunSummary:
        try:
            store = self._open_store()
        except BaseException:
            self._release_backend()
            raise
        self.store = store
        handler = FileLog(self.run_dir / "evo.log")
        try:
            (self.run_dir / "config.toml").write_text(to_toml(self.cfg))
            self._environment = describe(self.target, {"sandbox": self.sandbox.describe()})
            write_json(self.run_dir / "environment.json", self._environment)
            return self._run(store)
        finally:
            self._release_backend()
            handler.close()
            store.close()

    def _release_backend(self) -> None:
        """Shut down a backend this search made (a Ray instance it started stops too)."""
        if self._own_backend and self.backend is not None:
            self.backend.shutdown(wait=True)
            self.backend = None

    def _blame(self, error: OperatorConfigError | ValidationError) -> str:
        """Where an operator-config error was made: the run's config for a ``ranges.NAME`` or
        ``choices.NAME`` it declares, the target's target.toml for one declared there, else the
        seed."""
        section, _, name = getattr(error, "key", "").partition(".")
        if section in ("ranges", "choices") and name in self.cfg[section]:
            return f"the run config's [{section}] (seed {self.target.seed_path})"
        if section in ("ranges", "choices") and (self.target.root / "target.toml").is_file():
            return str(self.target.root / "target.toml")
        return str(self.target.seed_path)

    def _kill_marked(self, value: str, var: str) -> int:
        """End every process carrying ``var=value``: here, and on every Ray node."""
        return getattr(self.backend, "kill_everywhere", kill_marked)(value, var=var)

    def _run(self, store: RunStore) -> RunSummary:
        run = self.cfg["run"]
        self._stored_failure = self._failed_seed(store) is not None  # by an earlier attempt
        budget = run["evaluations"]
        deadline = time.monotonic() + run["hours"] * 3600 if run["hours"] > 0 else math.inf
        self._load_counters(store)
        self.proposer.set_spent(self._spent(store))
        self.trackers = open_trackers(  # before _requeue, which may finish programs
            self.cfg["log"],
            self.run_dir,
            run_name=self.run_dir.resolve().name,
            config=self.cfg,
            resume_step=self._evaluations(store),
        )
        # Children of an earlier process of this run that died without cleaning up (SIGKILL,
        # power loss) may still run: we hold the lock now, so every marked process is theirs.
        orphans = self._kill_marked(self._run_marker, var="EVO_RUN_DIR")
        if orphans:
            log.warning("killed %d processes left running by an earlier crash", orphans)
        backend = self.backend
        n_slots = len(self.slots)
        queue: deque[_Work] = deque()
        self._requeue(store, queue)
        ready: deque[Program] = deque()
        in_flight: dict[cf.Future, _Work] = {}
        misses = 0
        progress = Progress(self, budget, n_slots, enabled=self.show_progress)
        self.loop_seconds = (time.monotonic(), 0.0)  # (start, duration) of the steady state
        for line in [
            *openevolve_notices(self.cfg),
            self.sandbox_warning or "",
            self._budget_notice(store),
            *self.proposer.notices,
        ]:
            if line:
                log.warning("%s", line)
                print(f"evo: {line}", file=sys.stderr)
        try:
            self.interrupts.install()
            progress.start()
            while True:
                for fut in [f for f in in_flight if f.done()]:
                    work = in_flight.pop(fut)
                    if fut.exception() is not None:
                        self._lost(work, fut.exception(), queue, store)
                    else:
                        self._tell(store, work, fut.result(), queue)
                ready.extend(self.proposer.collect(store))
                if self._failed_seed(store) is not None:
                    break
                used = self._evaluations(store) + len(in_flight)
                stopping = self._stopping(store, deadline, used, budget)
                # The LLM operators stop the run (breaker, budget, max_proposals): the children
                # already made are evaluated first, and no new ones are made.
                draining = not stopping and bool(self.proposer.tripped)
                if draining and not ready and not queue:
                    self._stop_reason, stopping = self.proposer.tripped, True
                if stopping:  # a reply would only be dropped: end the requests in flight now
                    self.proposer.cancel_requests()
                while not stopping and len(in_flight) < n_slots and used < budget:
                    work = self._next_work(store, queue, ready, in_flight, n_slots, not draining)
                    if work is None:
                        break
                    in_flight[backend.submit(self._job(work))] = work
                    log.info(
                        "dispatch %s %s %s seed %d",
                        work.program.id[:10],
                        work.program.operator,
                        work.program.fidelity,
                        work.seed_index,
                    )
                    used += 1
                progress.update(len(in_flight))
                self._tracker_warnings()
                self._maybe_checkpoint(store)
                idle = not in_flight and not self.proposer.in_flight
                if idle and (stopping or not (queue or self._has_parents(store))):
                    break
                if (
                    not stopping
                    and not draining
                    and len(ready) + self.proposer.in_flight + self.proposer.planned < n_slots
                    and self._has_parents(store)
                ):
                    # with no slot free (ahead), only LLM requests start early (Proposer.propose)
                    planned = self.proposer.planned
                    ahead = not self._base_slot_free(in_flight, n_slots)
                    child = self.proposer.propose(store, ahead=ahead)
                    if child is not None:
                        ready.append(child)
                        misses = 0
                        continue
                    if self.proposer.planned == planned:  # planned is not a miss
                        misses += 1
                    if idle and misses >= 50:
                        self._stop_reason = f"the operators made no new valid child in {misses * PROPOSE_TRIES} tries"
                        break
                    if not in_flight and not self.proposer.in_flight:
                        continue
                waiting = list(in_flight) + self.proposer.futures
                if waiting:
                    cf.wait(waiting, timeout=0.25, return_when=cf.FIRST_COMPLETED)
                if self.interrupts.abandon:
                    self._stop_reason = self.interrupts.reason()
                    self._kill_marked(self.run_id, var="EVO_RUN_ID")
                    cf.wait(list(in_flight), timeout=10)
                    in_flight.clear()  # abandoned: still pending in the journal
                    break
        finally:
            self.loop_seconds = (self.loop_seconds[0], time.monotonic() - self.loop_seconds[0])
            self.interrupts.restore()
            self.proposer.shutdown()
            ready.extend(self.proposer.collect(store))  # counted, then dropped
            progress.stop()
            self.trackers.close(ok=sys.exc_info()[0] is None)
            self._tracker_warnings()
        self._checkpoint(store)
        summary = self.summary(store)
        write_json(self.run_dir / "summary.json", summary_dict(summary))
        self._check_baseline(store)
        tripped = self.proposer.failure
        if tripped and not any(
            p.runs and p.operator not in ("seed", "hand") for p in store.programs.values()
        ):
            raise RunError(f"{tripped}; no child was evaluated (the run dir is intact)")
        return summary

    def _tracker_warnings(self) -> None:
        """Print a tracker's warning once (it is already in evo.log): it never stops the run."""
        for line in self.trackers.new_warnings():
            print(f"evo: {line}", file=sys.stderr)

    def _maybe_checkpoint(self, store: RunStore) -> None:
        """archive.h5 on a timer: the journal already makes every record durable."""
        if time.monotonic() - self._last_checkpoint > CHECKPOINT_SECONDS:
            self._checkpoint(store)

    def _checkpoint(self, store: RunStore) -> None:
        store.checkpoint()
        self._save_counters()
        self._last_checkpoint = time.monotonic()

    def _save_counters(self) -> None:
        save_counters(
            self.run_dir,
            self.op_stats,
            self.gates,
            self.fidelity,
            self.proposer.failed_cost,
            merge_usage(self._usage_before, self.proposer.usage()),
            self.proposer.policy,
            self.proposer.emitter_off,
        )

    def _load_counters(self, store: RunStore) -> None:
        """Counters kept beside the store, then what the store itself says (the noise gate's
        pool and counts, the operator bandit and step size): the journal is the truth."""
        self.proposer.failed_cost, self._usage_before = load_counters(self.run_dir, self.op_stats)
        self._rebuild_counts(store)
        for gate in self.gates.values():
            gate.rebuild(store)
        self.proposer.policy.rebuild(store)

    def _rebuild_counts(self, store: RunStore) -> None:
        """Recount from the store (the journal is the truth) every per-operator count it can
        tell: children dispatched, failures by status, archive entries (new, improved) and
        promotions. operators.json is written on a timer, so after a SIGKILL it lags the
        store; only the proposal-side counts (duplicates, no child, LLM outcomes), which the
        store never sees, keep their saved values."""
        for counts in self.op_stats.values():
            for key in [k for k in counts if k in STORE_COUNTS or k.startswith("promoted_to_")]:
                del counts[key]
        for p in store.programs.values():
            if p.fidelity != self.fidelity:
                self._count(p.operator, f"promoted_to_{p.fidelity}")
            elif p.operator not in ("seed", "hand"):
                self._count(p.operator, "evaluated")
            if p.status not in ("ok", PENDING):
                self._count(p.operator, p.status)
        operators = {p.key: p.operator for p in store.programs.values()}
        for row in store.history:
            if row.added in ("new", "improved") and (row.id, row.fidelity) in operators:
                self._count(operators[(row.id, row.fidelity)], row.added)

    def _stopping(self, store: RunStore, deadline: float, used: int, budget: int) -> bool:
        cap = self.proposer.dollar_cap
        if self.interrupts.count:
            self._stop_reason = self.interrupts.reason()
        elif time.monotonic() > deadline:
            self._stop_reason = "hours budget reached"
        elif cap is not None and self._spent(store) >= cap:
            self._stop_reason = f"dollar budget reached (${cap:.2f})"
        elif used >= budget:
            self._stop_reason = "evaluation budget reached"
        else:
            return False
        return True

    # ---- work items ----------------------------------------------------------------------

    def _requeue(self, store: RunStore, queue: deque[_Work]) -> None:
        """Seed first, then hand-written variants, then children in flight at a crash."""
        for level in self.cascade.levels:  # every level needs its own baseline
            if (self.seed_id, level) not in store.programs:
                store.add(
                    Program(
                        id=self.seed_id,
                        source=self.seed_source,
                        fidelity=level,
                        operator="seed",
                        description="the target's seed program",
                        birth=0 if level != self.fidelity else store.next_birth(),
                    )
                )
        levels = self.cascade.levels
        pending = sorted(
            store.pending(),
            key=lambda p: (
                p.id != self.seed_id,
                levels.index(p.fidelity) if p.fidelity in levels else 0,
                p.birth,
            ),
        )
        for p in pending:
            if p.fidelity not in levels:
                continue
            self._scheduled[p.key] = len(p.runs)
            if not self._schedule(store, p, queue):
                # every run finished before the crash, but the final record was not written
                self._finish(store, p, queue)

    def _schedule(
        self, store: RunStore, p: Program, queue: deque[_Work], front: bool = False
    ) -> bool:
        """Queue the runs ``p`` still wants (in parallel); False when it wants none. A program
        whose runs are done while the seed's baseline has not yet told whether the evaluator
        is noisy is parked until it has (then :meth:`_unpark` decides)."""
        have = self._scheduled.get(p.key, len(p.runs))
        if any(r.status != "ok" for r in p.runs):
            return len(p.runs) < have  # a run failed: wait for the others, queue no more
        wanted = self.gates[p.fidelity].seeds_wanted(store, p)
        if wanted is None:
            if len(p.runs) >= have and all(q.key != p.key for q in self._parked):
                self._parked.append(p)
            return True
        n, why = wanted
        new = [_Work(p, i, why if i > 0 else "") for i in range(have, n)]
        self._scheduled[p.key] = max(have, n)
        if front:
            queue.extendleft(reversed(new))
        else:
            queue.extend(new)
        return bool(new) or len(p.runs) < have

    def _next_work(
        self,
        store: RunStore,
        queue: deque[_Work],
        ready: deque[Program],
        in_flight: dict[cf.Future, _Work],
        n_slots: int,
        propose: bool = True,
    ) -> _Work | None:
        base_ok = self._base_slot_free(in_flight, n_slots)
        for k, work in enumerate(queue):
            if base_ok or work.program.fidelity != self.fidelity:
                del queue[k]
                return work
        if not base_ok:
            return None  # the free slots are reserved for promoted programs
        if not self._has_parents(store):
            return None  # the seed's baseline is still being dispatched
        while ready:
            child = ready.popleft()
            if (child.id, self.fidelity) in store.programs:
                self._count(child.operator, "duplicate")
                continue
            return self._dispatchable(store, child)
        child = self.proposer.propose(store) if propose else None
        return self._dispatchable(store, child) if child else None

    def _base_slot_free(self, in_flight: dict[cf.Future, _Work], n_slots: int) -> bool:
        """A slot is free for a child of the search's fidelity (the cascade reserves the rest
        for promoted programs)."""
        base_busy = sum(w.program.fidelity == self.fidelity for w in in_flight.values())
        return len(in_flight) < n_slots and base_busy < self.cascade.base_slots(n_slots)

    def _dispatchable(self, store: RunStore, child: Program) -> _Work:
        self._children_cost = self._cost_of_children(store) + child.cost
        child.birth = store.next_birth()
        store.add(child)  # pending: durable before it runs
        self._count(child.operator, "evaluated")
        self._scheduled[child.key] = 1
        return _Work(child, 0)

    def _has_parents(self, store: RunStore) -> bool:
        """Children can be made once the seed's baseline runs are all dispatched: the seed is
        their parent until the archive has elites (no barrier on the baseline's results)."""
        seed = store.programs.get((self.seed_id, self.fidelity))
        if seed is None or seed.status not in ("pending", "ok"):
            return False
        first = self.gates[self.fidelity].first_baseline_runs()
        return seed.ok or self._scheduled.get(seed.key, 0) >= first

    def _job(self, work: _Work) -> EvalCall:
        p, i = work.program, work.seed_index
        child_dir = self.run_dir / "children" / f"{p.birth:06d}-{p.id[:10]}-{p.fidelity}-s{i}"
        if child_dir.exists():  # a run in flight at a crash left it behind
            remove_workdir(child_dir)
        child_dir.parent.mkdir(parents=True, exist_ok=True)
        run = self.cfg["run"]
        pass_env = {k: os.environ[k] for k in run["pass_env"] if k in os.environ}
        return EvalCall(
            self.target,
            p.source,
            child_dir.resolve(),
            fidelity=p.fidelity,
            seed=i,
            timeout=run["timeout"] or None,
            memory_mb=run["memory_mb"] or None,
            extra_env={"EVO_RUN_ID": self.run_id, "EVO_RUN_DIR": self._run_marker, **pass_env},
            sandbox=self.sandbox,
        )

    def _lost(
        self, work: _Work, error: BaseException, queue: deque[_Work], store: RunStore
    ) -> None:
        """A backend lost a run (a Ray node died, a worker crashed): run it again, or after
        ``MAX_LOST`` losses of the same run record it as a crash."""
        key = (*work.program.key, work.seed_index)
        self._losses[key] = self._losses.get(key, 0) + 1
        log.warning(
            "run %s seed %d lost by the backend (%s: %s)",
            work.program.id[:10],
            work.seed_index,
            type(error).__name__,
            error,
        )
        if self._losses[key] < MAX_LOST:
            queue.appendleft(work)
            return
        self._tell(
            store,
            work,
            EvalResult(
                status="crash",
                reason=(
                    f"the backend lost this run {MAX_LOST} times: {type(error).__name__}: {error}"
                ),
            ),
            queue,
        )

    # ---- telling the archive -------------------------------------------------------------

    def _tell(self, store: RunStore, work: _Work, result: EvalResult, queue: deque[_Work]) -> None:
        p = work.program
        self._runs_done = self._evaluations(store) + 1
        p.runs.append(
            SeedRun(
                seed=work.seed_index,
                status=result.status,
                metrics=dict(result.metrics),
                wall_time=result.wall_time,
                why=work.why,
            )
        )
        self.gates[p.fidelity].observe(p)
        if result.status != "ok":
            p.reason = result.reason
            p.stderr_tail = result.stderr_tail[-2000:]
        if result.info.get("artifacts"):  # an OpenEvolve EvaluationResult's, of the latest run
            p.artifacts = cap_artifacts(result.info["artifacts"])
        for d in self.target.descriptors:  # a NaN descriptor is not a metric: keep it to say so
            if d.name not in result.metrics and isinstance(result.info.get(d.name), str):
                try:
                    p.descriptors[d.name] = float(result.info[d.name])
                except ValueError:
                    pass
        if p.id == self.seed_id and result.info.get("corpus_sha256"):
            self._record_corpus(result.info["corpus_sha256"])
        prune_workdir(result.workdir, keep_logs=result.status != "ok")
        if self._schedule(store, p, queue, front=True):
            store.add(p)  # still pending, with this run durable
        else:
            self._scheduled.pop(p.key, None)
            self._finish(store, p, queue)
        if p.id == self.seed_id:  # its baseline may now tell whether the evaluator is noisy
            self._unpark(store, p.fidelity, queue)

    def _finish(self, store: RunStore, p: Program, queue: deque[_Work]) -> None:
        self.gates[p.fidelity].finish(store, p)
        if p.ok:  # an ok program the archive cannot place, or clips, says so in its reason
            problem, note = store.elites(p.fidelity).placement(p.descriptors)
            p.reason = f"{NOT_PLACED}: {problem}" if problem else note
        if p.status != "ok":
            self._count(p.operator, p.status)
        outcome = store.add(p)
        status = getattr(outcome, "status", "")
        if status in ("new", "improved"):
            self._count(p.operator, status)
        if p.fidelity == self.fidelity and store.history:
            row = store.history[-1]
            self.proposer.policy.observe(row, p, first_parent(store, p))
            if self.trackers is not None:  # the search's level only: its best never jumps
                values = {
                    "metric": row.fitness,
                    "best": row.best,
                    "coverage": row.coverage,
                    "qd_score": row.qd_score,
                    "elites": row.elites,
                    "operator": p.operator,
                    "status": p.status,
                    "cost": self._spent(store),
                }
                self.trackers.log_evaluation(self._evaluations(store), values)
        log.info(
            "%s %s %s %s fitness=%s %s",
            p.id[:10],
            p.fidelity,
            p.operator,
            p.status,
            fmt(p.fitness),
            status,
        )
        if self.cascade.active and p.status == "ok":
            self._promote(store, p.fidelity, queue)

    def _unpark(self, store: RunStore, level: str, queue: deque[_Work]) -> None:
        """A run of the seed at ``level`` is done: decide the programs parked on its baseline
        (those it still cannot decide are parked again)."""
        parked = [q for q in self._parked if q.fidelity == level]
        self._parked = [q for q in self._parked if q.fidelity != level]
        for q in parked:
            if not self._schedule(store, q, queue, front=True):
                self._scheduled.pop(q.key, None)
                self._finish(store, q, queue)

    def _promote(self, store: RunStore, level: str, queue: deque[_Work]) -> None:
        """Queue the programs the cascade promotes from ``level``, ahead of new children."""
        up = self.cascade.next_level(level)
        gate = self.gates[level]
        for p in self.cascade.promotions(
            store, level, gate.policy(store).floor, self.cfg["noise"]["gate"], self.target.better
        ):
            record = Cascade.promoted_record(p, up)
            store.add(record)  # pending at the next level: durable before it runs
            self._count(p.operator, f"promoted_to_{up}")
            self._scheduled[record.key] = 0
            self._schedule(store, record, queue, front=True)
            log.info("promote %s from %s to %s", p.id[:10], level, up)

    # ---- bookkeeping ---------------------------------------------------------------------

    def _describe(self, p: Program) -> None:
        """Edit descriptors against the seed, plus any metric descriptors the target names."""
        if "region" not in p.descriptors:
            p.descriptors.update(descriptors_for(p.source, self.seed_source))
        means = p.metrics_mean()
        p.descriptors.update(
            {d.name: means[d.name] for d in self.target.descriptors if d.name in means}
        )

    def _count(self, operator: str, what: str) -> None:
        self.op_stats.setdefault(operator, Counter())[what] += 1

    def _evaluations(self, store: RunStore) -> int:
        if self._runs_done is None:  # counted once, then kept up to date by _tell
            self._runs_done = sum(len(p.runs) for p in store.programs.values())
        return self._runs_done

    def _spent(self, store: RunStore) -> float:
        """Dollars spent on LLM requests: children's costs plus failed proposals'."""
        return self._cost_of_children(store) + self.proposer.failed_cost

    def _cost_of_children(self, store: RunStore) -> float:
        if self._children_cost is None:  # summed once, then kept up to date by _dispatchable
            self._children_cost = sum(p.cost for p in store.programs.values())
        return self._children_cost

    def _record_corpus(self, sha: str) -> None:
        """Add the corpus hash the seed reported to environment.json (once, not per run)."""
        if self._environment.get("corpus_sha256") != sha:
            self._environment["corpus_sha256"] = sha
            write_json(self.run_dir / "environment.json", self._environment)

    def _failed_seed(self, store: RunStore) -> Program | None:
        """The seed's record at a level where it failed its baseline, or was evaluated ok but
        cannot be placed in the archive (a descriptor missing or not finite), if any."""
        for level in self.cascade.levels:
            seed = store.programs.get((self.seed_id, level))
            if seed is None or seed.status == "pending":
                continue
            if seed.status != "ok" or seed.reason.startswith(NOT_PLACED):
                return seed
        return None

    def _check_baseline(self, store: RunStore) -> None:
        seed = self._failed_seed(store)
        if seed is None:
            return
        where = f" at fidelity {seed.fidelity!r}" if self.cascade.active else ""
        if seed.status == "ok":
            problem = seed.reason[len(NOT_PLACED) + 2 :]
            raise RunError(
                f"{self.target.seed_path}: the seed is evaluated ok{where} but its {problem}, "
                "so the archive cannot place it; make the program report a usable value, or "
                "choose other niches (archive.descriptors)"
            )
        tail = "\n".join(seed.stderr_tail.strip().splitlines()[-8:])
        stored = (
            f" (measured by an earlier attempt in {self.run_dir}; once the cause is fixed, "
            "--force-new measures it again)"
            if self._stored_failure
            else ""
        )
        raise RunError(
            f"{self.target.seed_path}: the seed program fails its baseline "
            f"evaluation{where}: {seed.status}: {seed.reason}{stored}"
            + (f"\n--- stderr tail ---\n{tail}" if tail else "")
        )

    def summary(self, store: RunStore) -> RunSummary:
        level = report_fidelity(store)
        seed = store.programs.get((self.seed_id, level))
        best = store.best(level)
        stats = store.elites(level).stats()
        noise = self.gates[level].estimate()
        improved = bool(
            best
            and seed
            and seed.ok
            and best.id != seed.id
            and self.target.better(best.fitness, seed.fitness)
        )
        return RunSummary(
            run_dir=self.run_dir,
            evaluations=self._evaluations(store),
            by_status=dict(store.counts_by_status()),
            seed_fitness=seed.fitness if seed and seed.ok else None,
            noise_floor=noise.floor,
            best_id=best.id if best else None,
            best_fitness=best.fitness if best else None,
            best_std=best.fitness_std if best else None,
            improved=improved,
            noise_dof=noise.dof,
            deterministic=noise.deterministic,
            remeasured=remeasurement_runs(store.programs.values()),
            operator_shares=self.proposer.policy.shares(),
            elites=stats.elites,
            coverage=stats.coverage,
            qd_score=stats.qd_score,
            gate_rejected=sum(g.rejected for g in self.gates.values()),
            gate_reevaluated=sum(g.reevaluated for g in self.gates.values()),
            stopped=self._stop_reason or "nothing left to evaluate",
            operators={k: dict(v) for k, v in self.op_stats.items()},
            emitter=emitter_summary(store, self.fidelity),
            emitter_off=self.proposer.emitter_off,
            direction=self.target.direction,
            metric=self.target.metric,
            fidelity=level,
            failure_reasons=failure_reasons(store.programs.values(), top=3),
            pending=self._unfinished(store),
        )

    def _budget_notice(self, store: RunStore) -> str:
        """One warning line when a fresh run's budget leaves nothing (or next to nothing) for
        children once the seed's baseline and the hand-written variants are measured."""
        if self._evaluations(store):
            return ""  # resumed: the baseline is done or under way
        budget, seeds = self.cfg["run"]["evaluations"], self.cfg["noise"]["seeds"]
        firsts = [self.gates[level].first_baseline_runs() for level in self.cascade.levels]
        fewest, most = sum(firsts), sum(max(seeds, f) for f in firsts)
        variants = sum(1 for p in store.pending() if p.id != self.seed_id)
        if budget > most + variants:
            return ""
        levels = (
            f" ({firsts[0]} at each of {len(firsts)} cascade levels)" if len(firsts) > 1 else ""
        )
        hand = f", and {variants} hand-written variant(s) take one run each" if variants else ""
        left = max(0, budget - fewest - variants)
        return (
            f"budget: run.evaluations = {budget} is no more than the baseline needs: the seed "
            f"takes {fewest} runs{levels}, {most} if the evaluator proves noisy "
            f"(noise.seeds = {seeds}){hand}, so at most {left} evaluation(s) are left for "
            f"children; raise --evaluations (a search needs tens)"
        )

    def _unfinished(self, store: RunStore) -> list[dict[str, Any]]:
        """The programs still pending, with how many runs they have and still need."""
        out = []
        for p in store.pending():
            wanted = self.gates[p.fidelity].seeds_wanted(store, p) if p.runs else None
            mean = p.metrics_mean().get(self.target.metric)
            out.append(
                {
                    "id": p.id,
                    "fidelity": p.fidelity,
                    "runs": len(p.runs),
                    "needed": max(wanted[0] if wanted else 1, len(p.runs) + 1),
                    "first": mean,
                }
            )
        return sorted(out, key=lambda d: (-d["runs"], d["id"]))


__all__ = ["RunError", "RunSummary", "Search"]
