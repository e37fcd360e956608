"""Making children: pick an operator (the policy's bandit) and parents from the archive, check
the child.

The first children (``bandit.initial_design``, at most a tenth of the budget) come from
``tpe``, which samples the seed's constants at random over their inferred bounds until it has
results to model: a space-filling start, as model-based optimisers begin with (Bergstra et al.
2011), instead of small steps around a seed that may be far from anything good.

Structural operators take milliseconds and run inline on the loop's thread. LLM operators take
seconds and run on a small thread pool (``llm.concurrency``), so the loop keeps dispatching and
telling results while a model thinks. While no slot is free only LLM requests start: a
structural child is made when a slot frees, from every result told by then. Every child, from
any operator, is deduplicated against every program the run has seen before it is handed to
the loop.

Each LLM proposal's outcome goes to the circuit breaker (:mod:`evo.breaker`), evo.log and the
run's ``proposals.jsonl`` (:mod:`evo.proposal_log`); the reasons the last replies could not be
used go back into the next prompt. The LLM spend is capped (:func:`dollar_cap`).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archive import FAILED, Program, RunStore, select_parents
from evo.breaker import CircuitBreaker
from evo.emitter import why_off
from evo.niches import EDIT_DESCRIPTORS, descriptors_for, measured_niches
from evo.policy import UNPARENTED, SearchPolicy
from evo.proposal_log import ProposalLog, outcome_of
from evo.target import Target
from operators import (
    OPERATORS,
    Context,
    NoChild,
    OperatorConfigError,
    SampleConstants,
    ValidationError,
    build_operators,
    canonical_hash,
    check_context,
)

log = logging.getLogger("evo")

STRUCTURAL = tuple(OPERATORS)
LLM = ("llm_mutation", "llm_crossover")


PROPOSE_TRIES = 20
"""Operator tries per :meth:`Proposer.propose` call before it gives up for now."""
DEFAULT_DOLLARS = 10.0
"""The LLM spend cap (dollars) of a run whose models are priced and whose ``run.dollars`` is
unset (0): a forgotten budget must not mean an unbounded bill. ``run.dollars = inf`` lifts it."""
FEEDBACK_FAILURES = 2
"""Recent reasons why the model's replies could not be used, shown in the next prompt."""


def dollar_cap(dollars: float, models: Sequence[Any]) -> float | None:
    """The run's LLM spend cap in dollars (``None``: no cap): ``run.dollars`` when set (``inf``
    for none), else :data:`DEFAULT_DOLLARS` when one of ``models`` (``ModelSpec``) has a price,
    else none."""
    if dollars > 0:
        return None if math.isinf(dollars) else float(dollars)
    priced = any(m.price_input or m.price_output for m in models)
    return DEFAULT_DOLLARS if priced else None


class Proposer:
    """Proposes new children for a run.

    Args:
        cfg: the resolved run config.
        target: the run's target.
        fidelity: the fidelity children are made for.
        stats: per-operator counters, shared with the loop (``evaluated``, ``duplicate``...).
        seed_source, seed_id: the seed program as the loop read it, and its canonical hash.
    """

    def __init__(
        self,
        cfg: dict,
        target: Target,
        fidelity: str,
        stats: dict[str, Counter],
        seed_source: str,
        seed_id: str,
        run_dir: Path | None = None,
    ):
        self.cfg, self.target, self.fidelity, self.stats = cfg, target, fidelity, stats
        self.run_dir = run_dir
        self.notices: list[str] = []  # lines the run prints when it starts
        self.stop_reason = ""  # set when the LLM operators must stop the run: a failure
        self.done_reason = ""  # set when they stop it as asked (llm.max_proposals)
        self.seed_source, self.seed_id = seed_source, seed_id
        self.context = Context(
            seed_source=self.seed_source,
            ranges=target.ranges,
            choices=target.choices,
            droppable=target.droppable,
            block=target.block,
            description=target.description,
            direction=target.direction,
        )
        self.rng = np.random.default_rng(cfg["run"]["seed"])
        weights = cfg["operators"]
        structural = {k: weights[k] for k in STRUCTURAL if weights[k] > 0}
        self.operators: list[tuple[Any, float]] = []
        if structural:
            check_context(self.context)
            self.operators += build_operators(structural, self.context)
        self.client = None
        self.dollar_cap: float | None = None
        self._pool: cf.ThreadPoolExecutor | None = None
        self._futures: dict[cf.Future, Any] = {}
        self._llm_concurrency = 0
        self._init_llm(cfg)
        if not self.operators:
            raise OperatorConfigError(
                "operators: no operator has a weight > 0; give "
                "'constants' a weight, or set [llm] base_url"
            )
        self.policy = SearchPolicy(
            {op.name: w for op, w in self.operators},
            fidelity=fidelity,
            direction=target.direction,
            bandit=cfg["bandit"]["enabled"],
            floor=min(cfg["bandit"]["floor"], 0.5 / len(self.operators)),
            patience=cfg["archive"]["patience"],
        )
        self.failed_cost = 0.0
        self._design_done = False
        # structural operators drawn while slots were busy, and whether on the emitter's turn
        self._planned: deque[tuple[Any, bool]] = deque()
        self._lineages: dict[cf.Future, str] = {}  # LLM requests made on the emitter's turn
        arch = cfg["archive"]
        self.emitter_off = why_off(  # see evo.emitter: it climbs niches that measure behaviour
            arch["emitter"], arch["selection"], measured_niches(target, arch), bool(self._local())
        )
        self.emitter_share = 0.0 if self.emitter_off else arch["emitter"]

    def _init_llm(self, cfg: dict) -> None:
        from operators.llm import DollarBudget, LLMConfig, build_llm_operators, make_client

        llm = LLMConfig.from_dict(cfg["llm"])
        weights = {k: cfg["operators"][k] for k in LLM if cfg["operators"][k] > 0}
        if not llm.enabled or not weights:
            return
        cap = self.dollar_cap = dollar_cap(cfg["run"]["dollars"], llm.models)
        if cap is not None and not cfg["run"]["dollars"]:
            self.notices.append(
                f"LLM spend is capped at ${cap:.2f}: the models are priced and run.dollars is "
                "not set (set run.dollars to change the cap, run.dollars = inf to lift it)"
            )
        self.budget = DollarBudget(cap)
        self.client = make_client(llm, self.budget)
        self.breaker = CircuitBreaker(llm.max_failures, llm.base_url)
        self.proposal_log = ProposalLog(self.run_dir) if self.run_dir is not None else None
        self._failures: deque[str] = deque(maxlen=FEEDBACK_FAILURES)
        self._started: dict[cf.Future, float] = {}
        self._max_proposals = llm.max_proposals
        self._max_outage = llm.max_outage
        self._asked = 0
        self.operators += build_llm_operators(llm, weights, client=self.client)
        self._llm_concurrency = llm.concurrency
        self._inspirations = llm.inspirations
        self._pool = cf.ThreadPoolExecutor(llm.concurrency, thread_name_prefix="evo-llm")

    # ---- the loop's interface ------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    @property
    def planned(self) -> int:
        """Structural operators drawn ahead (:meth:`propose` with ``ahead``), their children
        not made yet."""
        return len(self._planned)

    @property
    def futures(self) -> list[cf.Future]:
        return list(self._futures)

    def set_spent(self, dollars: float) -> None:
        """Dollars already spent by this run (on resume), so the budget is never passed."""
        if self.client is not None:
            self.budget.spent = dollars

    def propose(
        self, store: RunStore, tries: int = PROPOSE_TRIES, *, ahead: bool = False
    ) -> Program | None:
        """A new, valid, unseen child; None when every try missed, an LLM request started or
        (``ahead``) a structural operator was planned.

        ``ahead``: no slot is free for a child (every slot busy, or the rest reserved for
        promoted programs). A child made now would wait for a slot, made from an
        archive without the results told meanwhile, and ``tpe`` would be told one more
        running trial than runs. Only an LLM request, which takes seconds, is worth starting
        early; a structural operator drawn now is kept (:attr:`planned`) and makes its child
        when a slot frees, so the operators' shares are the bandit's either way.
        """
        elites = store.elite_programs(self.fidelity)
        only_seed = not elites  # the seed's baseline is still running: it is the only parent
        if only_seed:
            seed = store.programs.get((self.seed_id, self.fidelity))
            elites = [seed] if seed is not None else []
        design = self._initial_design(store)
        for i in range(tries):
            if not self.operators:
                return None
            emit = False
            if self._planned and not ahead:
                op, emit = self._planned.popleft()
            elif design is not None and i < tries // 2:
                op = design
            else:
                emit = not only_seed and self._emitter_turn()
                op = self._pick(self._local()) if emit else self._pick()
            if ahead and not getattr(op, "slow", False):
                self._planned.append((op, emit))
                return None
            if op.arity > len(elites):
                continue
            lineage = ""
            if only_seed:
                parents = elites[: op.arity]
            elif emit:
                parents = [self._emitter_head(store, elites)]  # may start a new lineage
                lineage = self.policy.emitter.lineage or ""
            else:
                parents = self._parents(store, op, elites)
            ctx = self._context(store, op, parents)
            if getattr(op, "slow", False):
                if len(self._futures) >= self._llm_concurrency or self._proposals_spent():
                    continue
                self._asked += 1
                rng = np.random.default_rng(self.rng.integers(2**63))
                fut = self._pool.submit(op.propose, parents, ctx, rng)
                self._futures[fut] = op
                if lineage:
                    self._lineages[fut] = lineage
                self._started[fut] = time.monotonic()
                return None
            try:
                child = op.propose(parents, ctx, self.rng)
            except (NoChild, ValidationError) as e:
                self._miss(op, e)
                continue
            program = self._admit(store, op, child, lineage=lineage)
            if program is not None:
                return program
        return None

    def collect(self, store: RunStore) -> list[Program]:
        """Children from LLM requests that have finished."""
        out = []
        for fut in [f for f in self._futures if f.done()]:
            op = self._futures.pop(fut)
            lineage = self._lineages.pop(fut, "")
            seconds = time.monotonic() - self._started.pop(fut, time.monotonic())
            try:
                child = fut.result()
            except (NoChild, ValidationError) as e:
                self._miss(op, e, seconds)
                continue
            except Exception as e:  # an operator bug must not take the run down
                log.exception("%s failed: %s", op.name, e)
                self._count(op.name, "error")
                continue
            program = self._admit(store, op, child, seconds, lineage=lineage)
            if program is not None:
                out.append(program)
        return out

    def cancel_requests(self) -> None:
        """End the LLM requests in flight within a second (they fail as ``cancelled``) and
        refuse new ones."""
        if self.client is not None:
            self.client.close()

    def shutdown(self) -> None:
        """Cancel the LLM requests in flight and stop the pool."""
        self.cancel_requests()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _proposals_spent(self) -> bool:
        """True once ``llm.max_proposals`` requests were made; the LLM operators then leave
        (and, when they were the only operators, the run stops once their replies are in)."""
        if not self._max_proposals or self._asked < self._max_proposals:
            return False
        if not any(not getattr(o, "slow", False) for o, _ in self.operators) and not self._futures:
            self.done_reason = f"llm.max_proposals = {self._max_proposals} proposals made"
        return True

    @property
    def tripped(self) -> str:
        """Why the LLM operators stop the run (the circuit breaker, the dollar budget); ""
        while they may go on."""
        if self.client is None:
            return ""
        return self.failure or self.done_reason

    @property
    def failure(self) -> str:
        """The part of :attr:`tripped` that is a failure (the breaker, the dollar budget)."""
        if self.client is None:
            return ""
        self.breaker.outage(*self.client.backoff.outage(), limit=self._max_outage)
        return self.stop_reason or self.breaker.tripped

    def backoff(self) -> tuple[float, str]:
        """``(seconds left, failure kind)`` of the LLM's run-wide backoff; ``(0, "")`` if none."""
        return self.client.backoff.state() if self.client is not None else (0.0, "")

    def usage(self) -> dict[str, Any]:
        return self.client.usage() if self.client is not None else {}

    # ---- helpers -------------------------------------------------------------------------

    def _parents(self, store: RunStore, op: Any, elites: list[Program]) -> list[Program]:
        """``op``'s parents: the best elite for an operator that samples every constant afresh
        (its child keeps the best's code), else the configured selection over ``elites``."""
        if op.name in UNPARENTED:
            return [store.best(self.fidelity) or elites[0]]
        return select_parents(
            self.cfg["archive"]["selection"],
            elites,
            op.arity,
            self.rng,
            self.policy.children,
            direction=self.target.direction,
            exploit=self.cfg["archive"]["exploit"],
            added=self.policy.added,
        )

    def _initial_design(self, store: RunStore) -> Any:
        """The ``tpe`` operator while the run's first children are its initial design (random
        draws over the inferred space, as any model-based search starts with), else None."""
        if self._design_done:
            return None
        tpe = next((op for op, _ in self.operators if op.name == "tpe"), None)
        size = min(self.cfg["bandit"]["initial_design"], self.cfg["run"]["evaluations"] // 10)
        children = sum(
            p.fidelity == self.fidelity and p.operator not in ("seed", "hand")
            for p in store.programs.values()
        )
        if tpe is None or children >= size:
            self._design_done = True
            return None
        return tpe

    def _pick(self, among: list[str] | None = None) -> Any:
        by_name = {op.name: op for op, _ in self.operators}
        return by_name[self.policy.pick(self.rng, among or list(by_name))]

    def _local(self) -> list[str]:
        """The operators the emitter's turns use: one parent, whose code the child keeps."""
        return [op.name for op, _ in self.operators if op.arity == 1 and op.name not in UNPARENTED]

    def _emitter_turn(self) -> bool:
        """Whether the next child is the emitter's (:mod:`evo.emitter`): a share
        ``archive.emitter`` of the run's children, with ``mixed`` selection, niches that
        measure behaviour and a local operator."""
        if self.emitter_share <= 0 or not self._local():
            return False
        return bool(self.rng.random() < self.emitter_share)

    def _emitter_head(self, store: RunStore, elites: list[Program]) -> Program:
        """The emitter's next parent: its head, or (no lineage, or a head this fidelity has no
        record of) the start of a new lineage: the elite with the fewest children, the best
        only when it is the only elite, ties at random."""
        em = self.policy.emitter
        head = store.programs.get((em.head, self.fidelity)) if em.head else None
        if head is not None and head.ok:
            return head
        best = store.best(self.fidelity)
        pool = [e for e in elites if best is None or e.id != best.id] or elites
        fewest = min(self.policy.children.get(e.id, 0) for e in pool)
        pool = [e for e in pool if self.policy.children.get(e.id, 0) == fewest]
        root = pool[int(self.rng.integers(len(pool)))]
        em.restart(root.id, root.fitness)
        return root

    def _miss(self, op: Any, e: Exception, seconds: float | None = None) -> None:
        kind = getattr(e, "kind", None)
        what = "rejected" if isinstance(e, ValidationError) else "no_child"
        self._count(op.name, f"{what}_{kind}" if kind else what)
        self.failed_cost += getattr(e, "cost", 0.0)
        log.debug("%s made no child: %s", op.name, e)
        if getattr(op, "slow", False):
            reason = str(getattr(e, "reason", "") or e)
            detail = getattr(e, "detail", "")
            self._llm_outcome(op, kind or "error", reason, seconds, e, detail=detail)
            if kind == "edit" or (kind or "").startswith("invalid_"):
                self._failures.append(reason)
        if kind == "budget":  # the dollar budget is spent: no more LLM requests
            self.operators = [(o, w) for o, w in self.operators if not getattr(o, "slow", 0)]
            log.warning("dollar budget reached: the LLM operators stop")
            if not self.operators:
                self.stop_reason = (
                    f"LLM dollar budget: {str(e).split(': budget: ', 1)[-1]}; the LLM "
                    "operators were the "
                    "only ones (raise run.dollars, or lower llm.max_tokens: each request "
                    "reserves its worst case)"
                )

    def _llm_outcome(
        self, op: Any, kind: str, reason: str, seconds: float | None, source: Any, **more: Any
    ) -> None:
        """One LLM proposal's outcome: to the circuit breaker, evo.log and ``proposals.jsonl``."""
        self.breaker.record(kind, reason, more.get("detail", ""))
        log.info("%s proposal: %s: %s", op.name, outcome_of(kind, more.get("detail", "")), reason)
        if self.proposal_log is None:
            return
        record = {
            "operator": op.name,
            "model": getattr(source, "model", ""),
            "outcome": outcome_of(kind, more.get("detail", "")),
            "kind": kind,
            "reason": reason,
            "tokens": int(getattr(source, "tokens", 0) or 0),
            "cost": float(getattr(source, "cost", 0.0) or 0.0),
            "seconds": None if seconds is None else round(seconds, 3),
            **more,
        }
        if kind != "child" and getattr(source, "reply", ""):
            record["reply"] = source.reply
        self.proposal_log.write(**record)

    def _admit(
        self,
        store: RunStore,
        op: Any,
        child: Any,
        seconds: float | None = None,
        *,
        lineage: str = "",
    ) -> Program | None:
        try:
            cid = getattr(child, "id", None) or canonical_hash(child.source)
        except ValidationError as e:
            self._miss(op, e, seconds)
            return None
        slow = getattr(op, "slow", False)
        if (cid, self.fidelity) in store.programs:
            self._count(op.name, "duplicate")
            self.failed_cost += getattr(child, "cost", 0.0)
            if slow:
                reason = f"the child is a program the run has already seen ({cid[:12]})"
                self._llm_outcome(op, "duplicate", reason, seconds, child, child=cid)
                self._failures.append(f"{op.name}: {reason}: propose a different change")
            return None
        if slow:
            self._llm_outcome(op, "child", child.description, seconds, child, child=cid)
        return Program(
            id=cid,
            source=child.source,
            fidelity=self.fidelity,
            parents=tuple(child.parents),
            operator=child.operator,
            description=child.description,
            idea=getattr(child, "idea", ""),
            cost=getattr(child, "cost", 0.0),
            tokens=getattr(child, "tokens", 0),
            descriptors=descriptors_for(child.source, self.seed_source),
            lineage=lineage,
        )

    def _count(self, operator: str, what: str) -> None:
        self.stats.setdefault(operator, Counter())[what] += 1

    def _context(self, store: RunStore, op: Any, parents: list[Program]) -> Context:
        extra: dict[str, Any] = {}
        if isinstance(op, SampleConstants):  # tpe and tpe_local model the run's history
            extra["history"] = tuple(
                p for p in store.programs.values() if p.fidelity == self.fidelity
            )
        if op.name in self.policy.steps:
            extra["step_scale"] = self.policy.steps[op.name]
        if op.arity == 2:
            extra["ancestor_source"] = common_ancestor(store, parents, self.seed_source)
        if getattr(op, "slow", False):
            extra["feedback"] = self._feedback(store, parents[0]) + tuple(
                f"one of your recent replies could not be used: {r}" for r in self._failures
            )
            extra["archive_sample"] = self._inspirations_for(store, parents)
            extra["niche"] = self._niche(store)
        if not extra:
            return self.context
        return Context(**{**self.context.__dict__, **extra})

    def _feedback(self, store: RunStore, parent: Program, n: int = 3) -> tuple[str, ...]:
        """Why the parent and its most recent failed children failed (stderr tails)."""
        out = []
        if parent.status in FAILED:
            out.append(
                f"the parent itself: {parent.status}: {parent.reason}\n{parent.stderr_tail[-800:]}"
            )
        if parent.artifacts:  # what the evaluator said about the parent (OpenEvolve artifacts)
            out.append(f"the evaluator's artifacts for the parent:\n{_artifacts(parent, 1500)}")
        failed = [
            p for p in store.programs.values() if parent.id in p.parents and p.status in FAILED
        ]
        for p in sorted(failed, key=lambda p: -p.birth)[:n]:
            text = f"a child ({p.description}): {p.status}: {p.reason}\n{p.stderr_tail[-800:]}"
            if p.artifacts:
                text += f"\nits evaluator's artifacts:\n{_artifacts(p, 600)}"
            out.append(text)
        return tuple(out)

    def _inspirations_for(self, store: RunStore, parents: list[Program]) -> tuple[Program, ...]:
        ids = {p.id for p in parents}
        others = [p for p in store.elite_programs(self.fidelity) if p.id not in ids]
        if not others:
            return ()
        k = min(self._inspirations, len(others))
        picks = self.rng.choice(len(others), size=k, replace=False)
        return tuple(others[i] for i in picks)

    def _niche(self, store: RunStore) -> dict[str, Any] | None:
        """An empty cell of the edit-descriptor grid to aim for (a weak one when all are full)."""
        elites = store.elites(self.fidelity)
        if tuple(d.name for d in elites.dims) != EDIT_DESCRIPTORS:
            return None
        region_dim, size_dim = elites.dims
        regions = [r for r in region_dim.categories if r not in ("none", "other")]
        occupied = {tuple(c.labels) for c in elites.cells()}
        sizes = size_dim.labels()
        empty = [
            (r, b)
            for r in regions
            for b in range(1, size_dim.bins)
            if (r, sizes[b]) not in occupied
        ]
        pool = empty or [(r, b) for r in regions for b in range(1, size_dim.bins)]
        region, size_bin = pool[self.rng.integers(len(pool))]
        return {"region": region, "edit_size_bin": int(size_bin)}


def common_ancestor(store: RunStore, parents: list[Program], seed_source: str) -> str:
    """Source of the nearest common ancestor of two parents (by lineage), else the seed."""
    fid = parents[0].fidelity

    def ancestors(p: Program) -> dict[str, int]:
        seen: dict[str, int] = {}
        frontier, depth = [p.id], 0
        while frontier and depth < 64:
            nxt = []
            for pid in frontier:
                if pid in seen:
                    continue
                seen[pid] = depth
                rec = store.programs.get((pid, fid))
                if rec is not None:
                    nxt.extend(rec.parents)
            frontier, depth = nxt, depth + 1
        return seen

    a, b = ancestors(parents[0]), ancestors(parents[1])
    common = sorted((a[i] + b[i], i) for i in a.keys() & b.keys())
    if common:
        rec = store.programs.get((common[0][1], fid))
        if rec is not None:
            return rec.source
    return seed_source


def _artifacts(p: Program, limit: int) -> str:
    """A program's evaluator artifacts as ``key: value`` lines, at most ``limit`` characters."""
    text = "\n".join(f"{k}: {v}" for k, v in p.artifacts.items())
    return text if len(text) <= limit else text[:limit] + " [...]"
