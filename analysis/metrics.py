"""Numbers derived from a run's history: elites over time, diversity, operators, hit rate,
saturation, lineage. Plots and the report both draw from here, so they always agree.

Time is the store's history index: one step per finished program evaluation (a program
measured with several seeds is one step). ``seed runs`` (every seed of every program) are
counted separately where a budget is meant.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from dataclasses import dataclass, field

from analysis.rundata import RunData
from archive import FAILED, Program

INSERTED = ("new", "improved")
SAMPLE_ELITES = 12  # elites compared pairwise per point: 66 pairs, cached across points


def elite_timeline(run: RunData) -> list[dict[int, str]]:
    """The elites (cell -> program id) after each history row, replayed from the rows.

    An elite re-measured worse rebuilds its cell in the store; the replay does not see that
    rebuild (rare: only gated re-measurements), so late states may differ in such a cell.
    """
    arch = run.store.elites(run.fidelity)
    cells: dict[int, str] = {}
    where: dict[str, int] = {}
    out = []
    for row in run.history:
        p = run.program(row.id)
        if row.added in INSERTED and p is not None:
            try:
                cell = arch.cell_of(p.descriptors)
            except ValueError:
                cell = None
            if cell is not None:
                old = where.pop(row.id, None)
                if old is not None and cells.get(old) == row.id:
                    del cells[old]
                cells[cell] = row.id
                where[row.id] = cell
        out.append(dict(cells))
    return out


@dataclass
class Diversity:
    """Diversity of the elites at sampled history steps.

    Attributes:
        steps: history indices sampled.
        elites: number of elites at each step.
        region_entropy: Shannon entropy (bits) of the elites' edited regions.
        distance: mean pairwise distance between elites' canonical sources (0 = identical,
            1 = nothing in common): ``1 - difflib ratio`` over their lines, on a sample of
            at most ``SAMPLE_ELITES`` elites spread over the cells.
    """

    steps: list[int] = field(default_factory=list)
    elites: list[int] = field(default_factory=list)
    region_entropy: list[float] = field(default_factory=list)
    distance: list[float] = field(default_factory=list)


def entropy(labels: list[str]) -> float:
    """Shannon entropy in bits of the label distribution (0 for one label or none)."""
    n = len(labels)
    if n == 0:
        return 0.0
    return max(0.0, -sum(c / n * math.log2(c / n) for c in Counter(labels).values()))


def diversity(run: RunData, points: int = 30) -> Diversity:
    """Diversity at up to ``points`` evenly spaced history steps (the last one included)."""
    from operators import canonical_source

    timeline = elite_timeline(run)
    n = len(timeline)
    steps = sorted({round(i * (n - 1) / max(1, points - 1)) for i in range(min(points, n))})
    canon: dict[str, list[str]] = {}
    pair: dict[tuple[str, str], float] = {}

    def lines(pid: str) -> list[str]:
        if pid not in canon:
            p = run.program(pid)
            try:
                canon[pid] = canonical_source(p.source).splitlines() if p else []
            except ValueError:  # unparsable text: compare it as written
                canon[pid] = p.source.splitlines() if p else []
        return canon[pid]

    def dist(a: str, b: str) -> float:
        key = (a, b) if a < b else (b, a)
        if key not in pair:
            sm = difflib.SequenceMatcher(None, lines(key[0]), lines(key[1]), autojunk=False)
            pair[key] = 1.0 - sm.ratio()
        return pair[key]

    out = Diversity()
    for s in steps:
        ids = [timeline[s][c] for c in sorted(timeline[s])]
        regions = [str((run.program(i).descriptors or {}).get("region", "?")) for i in ids]
        sample = (
            ids
            if len(ids) <= SAMPLE_ELITES
            else [
                ids[round(k * (len(ids) - 1) / (SAMPLE_ELITES - 1))] for k in range(SAMPLE_ELITES)
            ]
        )
        pairs = [(a, b) for i, a in enumerate(sample) for b in sample[i + 1 :]]
        out.steps.append(s)
        out.elites.append(len(ids))
        out.region_entropy.append(entropy(regions))
        out.distance.append(sum(dist(a, b) for a, b in pairs) / len(pairs) if pairs else 0.0)
    return out


@dataclass
class OperatorRow:
    """One operator's record.

    ``evaluated``, ``ok``, ``new``, ``improved``, ``gate_rejected`` (kept out by the noise
    gate) and ``failures`` come from the store. ``duplicates`` (children already evaluated,
    or identical to their parent), ``no_child`` (the operator made nothing, or raised) and
    ``invalid`` (children failing validation) come from ``operators.json``, the loop's
    counters; they are None when the run dir has none. ``share`` is the operator bandit's
    current selection probability (``counters.json``), None when unknown.
    """

    operator: str
    evaluated: int = 0
    ok: int = 0
    new: int = 0
    improved: int = 0
    gate_rejected: int = 0
    failures: int = 0
    duplicates: int | None = None
    no_child: int | None = None
    invalid: int | None = None
    share: float | None = None


def operator_table(run: RunData) -> list[OperatorRow]:
    """Per operator: what its children did (see :class:`OperatorRow`), seed and hand first."""
    op_of = {p.id: p.operator for p in run.finished}
    rows: dict[str, OperatorRow] = {}
    for p in run.finished:
        r = rows.setdefault(p.operator, OperatorRow(p.operator))
        r.evaluated += 1
        r.ok += p.status == "ok"
        r.gate_rejected += p.status == "rejected"
        r.failures += p.status in FAILED
    for h in run.history:
        r = rows.get(op_of.get(h.id, ""))
        if r is not None and h.added in INSERTED:
            setattr(r, h.added, getattr(r, h.added) + 1)
    if run.operators is not None:
        for name, c in run.operators.items():
            r = rows.setdefault(name, OperatorRow(name))
            # keys as the loop writes them: duplicate, no_child[_KIND], error,
            # rejected_KIND (validation; noop = identical to the parent), and statuses
            # (a bare "rejected" is the noise gate's status, counted from the store)
            r.duplicates = int(c.get("duplicate", 0)) + int(c.get("rejected_noop", 0))
            r.no_child = sum(
                int(v) for k, v in c.items() if k == "error" or k.startswith("no_child")
            )
            r.invalid = sum(
                int(v) for k, v in c.items() if k.startswith("rejected_") and k != "rejected_noop"
            )
        for r in rows.values():
            if r.duplicates is None:
                r.duplicates = r.no_child = r.invalid = 0
    for name, share in ((run.counters or {}).get("operator_shares") or {}).items():
        rows.setdefault(name, OperatorRow(name)).share = float(share)
    order = {"seed": 0, "hand": 1}
    return sorted(rows.values(), key=lambda r: (order.get(r.operator, 2), r.operator))


@dataclass
class HitRate:
    """Children (every program but the seed) and how many took a cell or the lead.

    Attributes:
        children: child evaluations finished.
        inserted: children that took an empty cell or beat a cell's elite.
        new_best: children that became the archive's best.
    """

    children: int
    inserted: int
    new_best: int

    @property
    def rate(self) -> float:
        """Improving children / evaluated children (0 with no child)."""
        return self.inserted / self.children if self.children else 0.0


def new_best_steps(run: RunData) -> list[int]:
    """History indices at which a child became the archive's best (the first best, the
    seed's baseline, is not an improvement)."""
    out, prev = [], None
    for i, h in enumerate(run.history):
        if (
            prev is not None
            and h.best is not None
            and h.best != prev
            and h.added in INSERTED
            and h.fitness == h.best
            and h.id != run.seed_id
        ):
            out.append(i)
        if h.best is not None:
            prev = h.best
    return out


def hit_rate(run: RunData) -> HitRate:
    """Hit rate over the child evaluations in the history."""
    rows = [(i, h) for i, h in enumerate(run.history) if h.id != run.seed_id]
    best_steps = set(new_best_steps(run))
    return HitRate(
        children=len(rows),
        inserted=sum(h.added in INSERTED for _, h in rows),
        new_best=sum(i in best_steps for i, _ in rows),
    )


@dataclass
class Window:
    """Improvements in one window of history steps ``[start, end)``, scaled per 100."""

    start: int
    end: int
    inserted: int
    new_best: int

    @property
    def inserted_per_100(self) -> float:
        return 100.0 * self.inserted / max(1, self.end - self.start)

    @property
    def new_best_per_100(self) -> float:
        return 100.0 * self.new_best / max(1, self.end - self.start)


def saturation(run: RunData, window: int | None = None) -> list[Window]:
    """Children's archive insertions and new bests per window of evaluations, over the run.

    Args:
        window: steps per window; None: 100, or a fifth of the run when it is shorter
            than 500 evaluations (so a short run still shows a trend).
    """
    n = len(run.history)
    w = window or (100 if n >= 500 else max(1, math.ceil(n / 5)))
    best_steps = set(new_best_steps(run))
    out = []
    for start in range(0, n, w):
        rows = range(start, min(n, start + w))
        out.append(
            Window(
                start,
                rows.stop,
                sum(
                    run.history[i].added in INSERTED and run.history[i].id != run.seed_id
                    for i in rows
                ),
                sum(i in best_steps for i in rows),
            )
        )
    return out


def lineage(run: RunData, program: Program, limit: int = 80) -> list[Program]:
    """``program`` and its ancestors (every parent, breadth first), at most ``limit``."""
    seen: dict[str, Program] = {}
    frontier = [program.id]
    while frontier and len(seen) < limit:
        nxt = []
        for pid in frontier:
            if pid in seen:
                continue
            p = run.program(pid) or next(
                (q for q in run.store.programs.values() if q.id == pid), None
            )
            if p is None:
                continue
            seen[pid] = p
            nxt.extend(p.parents)
        frontier = nxt
    return sorted(seen.values(), key=lambda p: p.birth)


def main_line(run: RunData, program: Program) -> list[Program]:
    """The first-parent chain from the seed (or the oldest known ancestor) to ``program``."""
    chain, p, seen = [], program, set()
    while p is not None and p.id not in seen:
        chain.append(p)
        seen.add(p.id)
        p = run.program(p.parents[0]) if p.parents else None
    return chain[::-1]
