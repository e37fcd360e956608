"""``evo report``: what a run found and how it got there, as Markdown (terminal and file).

Every number is computed from the store snapshot (and the counters the loop keeps beside it)
into a :class:`Report`; the Markdown is only a rendering of those facts, so tests can check
them against the archive directly.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis import metrics
from analysis.edits import Edit, edit_set
from analysis.errors import AnalysisError
from analysis.rundata import RunData, load_run
from analysis.transfer import Transfer, render_transfers, transfers
from archive import (
    FAILED,
    GATED_REASONS,
    NoiseEstimate,
    Program,
    estimate_noise,
    failure_reasons,
    placement_notes,
    remeasurement_runs,
)
from evo.proposal_log import llm_summary, outcomes_line, spend_lines
from evo.rundir import report_fidelity


@dataclass
class Rejected:
    """A would-be elite the noise gate re-measured and then kept out of the archive."""

    id: str
    first_draw: float | None
    fitness: float | None
    seeds: int
    status: str


@dataclass
class Report:
    """The facts of a report (see :func:`build_report`)."""

    run: RunData
    seed_runs: int
    evaluations: int
    by_status: dict[str, int]
    elites: int
    cells: int
    coverage: float
    qd_score: float
    seed: Program | None
    best: Program | None
    edits: tuple[Edit, ...]
    hit: metrics.HitRate
    windows: list[metrics.Window]
    noise: NoiseEstimate
    remeasured: dict[str, int]  # runs after each program's first, by reason
    noise_seeds: int
    gated: int
    rejected: list[Rejected]  # status ``rejected``: the gate's verdict, margin within noise
    faded: list[Rejected]  # passed the gate but no longer beat the cell's elite
    failures: dict[str, tuple[int, str]]  # status -> (count, an example reason)
    failure_reasons: list[tuple[str, str, int]]  # (status, reason, programs), most common first
    descriptor_notes: dict[str, tuple[int, str]]  # ok programs the archive could not place as given
    cost: float
    tokens: int
    llm: dict[str, Any] | None
    eval_seconds: float
    elapsed_seconds: float
    main_line: list[Program] = field(default_factory=list)  # seed ... best, first parents
    transfers: list[Transfer] = field(default_factory=list)  # one per cascade level pair
    notes: list[str] = field(default_factory=list)

    @property
    def noise_floor(self) -> float:
        """The pooled noise floor (``noise.floor``)."""
        return self.noise.floor

    @property
    def gain(self) -> float | None:
        """Best minus seed fitness, signed so that positive is better."""
        if self.best is None or self.seed is None or self.seed.fitness is None:
            return None
        return self.run.gain(self.best.fitness, self.seed.fitness)


def build_report(run: RunData) -> Report:
    """Compute every fact of the report from ``run``."""
    store, fid = run.store, run.fidelity
    programs = run.programs
    stats = store.elites(fid).stats()
    seed, best = run.seed, run.best
    edits: tuple[Edit, ...] = ()
    notes = []
    if best is not None and seed is not None and best.id != seed.id:
        try:
            edits = edit_set(seed.source, best.source).edits
        except AnalysisError as e:
            notes.append(str(e))
    level = [p for p in programs if p.fidelity == fid]
    # Re-measured children say why in their runs (still pending ones too, when the budget
    # ended mid-way, as the run's own count has them); run dirs written before that have the ids
    # in counters.json, or at least more than one run.
    gated_ids = (
        {p.id for p in programs if any(r.why in GATED_REASONS for r in p.runs)}
        or set((run.counters or {}).get("gated", []))
        or {p.id for p in run.finished if p.id != run.seed_id and len(p.runs) > 1}
    )
    last_added = {h.id: h.added for h in run.history}
    rejected, faded = [], []
    for p in run.finished:
        if p.id in gated_ids and last_added.get(p.id) not in metrics.INSERTED:
            first = p.runs[0].metrics.get(run.metric) if p.runs else None
            entry = Rejected(p.id, first, p.fitness, len(p.runs), p.status)
            (rejected if p.status == "rejected" else faded).append(entry)
    failures: dict[str, tuple[int, str]] = {}
    for p in run.finished:
        if p.status in FAILED:  # rejected (see the noise gate) and duplicates are not failures
            n, why = failures.get(p.status, (0, ""))
            failures[p.status] = (n + 1, why or p.reason)
    times = [h.time for h in run.history]
    llm = llm_summary(run.run_dir)
    return Report(
        run=run,
        seed_runs=sum(len(p.runs) for p in programs),
        evaluations=len(run.history),
        by_status=dict(store.counts_by_status())
        if len(store.fidelities) <= 1
        else dict(Counter(p.status for p in programs)),
        elites=stats.elites,
        cells=stats.cells,
        coverage=stats.coverage,
        qd_score=stats.qd_score,
        seed=seed,
        best=best,
        edits=edits,
        hit=metrics.hit_rate(run),
        windows=metrics.saturation(run),
        noise=estimate_noise(level, run.metric),
        remeasured=remeasurement_runs(programs),
        noise_seeds=len(seed.runs) if seed else 0,
        gated=len(gated_ids),
        rejected=rejected,
        faded=faded,
        failures=dict(sorted(failures.items())),
        failure_reasons=failure_reasons(run.store.programs.values()),
        descriptor_notes=placement_notes(run.store.programs.values()),
        cost=sum(p.cost for p in programs) + (llm["failed_cost"] if llm else 0.0),
        tokens=sum(p.tokens for p in programs),
        llm=llm,
        eval_seconds=sum(r.wall_time for p in programs for r in p.runs),
        main_line=metrics.main_line(run, best) if best is not None else [],
        transfers=transfers(run),
        elapsed_seconds=max(times) - min(times) if times else 0.0,
        notes=notes,
    )


REMEASURE_WHY = {
    "baseline": "the seed's baseline: its spread is the first measure of the noise",
    "confirm_best": "a would-be new best, confirmed before it becomes the best",
    "within_noise": "a would-be elite whose margin was within the noise floor",
    "earlier": "made by a version of evo that did not record why",
}


def _noise_text(rep: Report) -> str:
    n = rep.noise
    runs = sum(rep.remeasured.values())
    if n.deterministic:
        head = (
            f"The evaluator is **deterministic**: the seed's {rep.noise_seeds} runs (and every "
            "program measured again) repeated every metric but timing exactly, so no program "
            "is measured twice and no win needs confirming."
        )
    elif not n.known:
        head = "No program was measured twice: the noise floor is unknown."
    else:
        head = (
            f"Noise floor: **{n.floor:.4g}** (standard deviation of one evaluation, pooled over "
            f"{n.programs} programs measured more than once: {n.dof} degrees of freedom)."
        )
    return (
        f"{head} Runs that went to re-measurement: {runs}. Would-be elites the noise gate "
        f"re-measured: {rep.gated}; it rejected "
        f"**{len(rep.rejected)}** (still within noise after re-measuring), and "
        f"{len(rep.faded)} more no longer beat their cell's elite."
    )


def _f(x: float | None, digits: int = 6) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _lineage_notes(chain: list[Program], key: str) -> list[str]:
    """The descriptions along the best's first-parent ``chain`` that mention statement ``key``."""
    out = []
    word = re.compile(rf"(?<![\w.]){re.escape(key)}(?!\w)")
    for p in chain[1:]:
        for part in p.description.split("; "):
            if word.search(part):
                out.append(f"{p.operator} (birth {p.birth}): {part.strip()}")
    return out


def render_report(rep: Report) -> str:
    """The report as Markdown."""
    run = rep.run
    m = [
        f"# evo report: {run.run_dir}",
        "",
        f"Target `{run.store.meta.get('target', '?')}`, fidelity `{run.fidelity}`, metric "
        f"`{run.metric}` ({run.direction}).",
        "",
    ]
    m += [
        "## Summary",
        "",
        "| what | value |",
        "| --- | --- |",
        f"| programs finished | {rep.evaluations} |",
        f"| evaluation runs (each seed of each program: what the budget counts) | {rep.seed_runs} |",
        f"| programs by status | {', '.join(f'{k} {v}' for k, v in sorted(rep.by_status.items()))} |",
        f"| elites / cells | {rep.elites} / {rep.cells} ({rep.coverage:.1%} coverage) |",
        f"| QD-score | {rep.qd_score:.6g} |",
        f"| seed {run.metric} | {_f(rep.seed.fitness if rep.seed else None)} |",
        f"| best {run.metric} | {_f(rep.best.fitness if rep.best else None)} ± "
        f"{_f(rep.best.fitness_std if rep.best else None, 3)} |",
        *_top_level_row(run),
        "",
    ]
    m += _best_section(rep)
    h = rep.hit
    m += [
        "## Hit rate",
        "",
        f"{h.inserted} of {h.children} child evaluations took an empty cell or beat a "
        f"cell's elite: hit rate **{h.rate:.1%}**. {h.new_best} of them became the best.",
        "",
    ]
    m += [
        "## Saturation",
        "",
        "Improvements per 100 evaluations, window by window (a search "
        "that has saturated shows rates falling towards 0).",
        "",
        "| evaluations | entered the archive /100 | new best /100 |",
        "| --- | --- | --- |",
    ]
    m += [
        f"| {w.start}-{w.end - 1} | {w.inserted_per_100:.1f} | {w.new_best_per_100:.1f} |"
        for w in rep.windows
    ]
    m += ["", "## Noise", "", _noise_text(rep), ""]
    if rep.remeasured:
        m += ["| re-measurement runs | why | runs |", "| --- | --- | --- |"]
        m += [
            f"| {k} | {REMEASURE_WHY.get(k, k)} | {v} |" for k, v in sorted(rep.remeasured.items())
        ]
        m.append("")
    if rep.rejected or rep.faded:
        m += [
            "| program | first draw | after re-measuring | seeds | outcome |",
            "| --- | --- | --- | --- | --- |",
        ]
        m += [
            f"| `{r.id[:12]}` | {_f(r.first_draw)} | {_f(r.fitness)} | {r.seeds} | "
            f"{'rejected by the gate' if r.status == 'rejected' else 'not better'} |"
            for r in rep.rejected + rep.faded
        ]
        m.append("")
    m += render_transfers(rep.transfers)
    m += ["## Failures by status", ""]
    if rep.failures:
        total = sum(rep.by_status.values()) or 1
        m += ["| status | programs | share | example |", "| --- | --- | --- | --- |"]
        m += [
            f"| {s} | {n} | {n / total:.1%} | {why[:100].replace('|', '/') or '-'} |"
            for s, (n, why) in rep.failures.items()
        ]
        m += ["", "Most common reasons (evaluator-reported errors among them):", ""]
        m += ["| status | reason | programs |", "| --- | --- | --- |"]
        m += [
            f"| {s} | {why[:200].replace('|', '/') or '-'} | {n} |"
            for s, why, n in rep.failure_reasons
        ]
    else:
        m.append("No failures.")
    if rep.descriptor_notes:
        m += ["", "Programs evaluated ok whose descriptors the archive could not use as given:", ""]
        m += [
            f"- {kind}: {n} (e.g. {why[:200]})"
            for kind, (n, why) in sorted(rep.descriptor_notes.items())
        ]
    m += render_llm(rep.llm)
    m += [
        "",
        "## Cost",
        "",
        f"LLM cost ${rep.cost:.4f}, failed proposals included ({rep.tokens} tokens in "
        f"children); {rep.eval_seconds:.1f} s of "
        f"evaluation time over {rep.seed_runs} evaluation "
        f"run{'s' if rep.seed_runs != 1 else ''}; {rep.elapsed_seconds:.1f} s from "
        "the first to the last finished evaluation.",
        "",
    ]
    if rep.notes:
        m += ["## Notes", ""] + [f"- {n}" for n in rep.notes] + [""]
    return "\n".join(m)


def render_llm(llm: dict[str, Any] | None) -> list[str]:
    """The LLM section: what the proposals came to, the last reason per failure class, and
    the spend per model and failure kind (nothing when the run asked no model)."""
    if not llm:
        return []
    m = ["", "## LLM proposals", "", outcomes_line(llm) + " (from proposals.jsonl).", ""]
    if llm["outcomes"]:
        m += ["| outcome | proposals | share | last reason |", "| --- | --- | --- | --- |"]
        n = llm["proposals"] or 1
        m += [
            f"| {k} | {v} | {v / n:.0%} | "
            f"{llm['last_reason'].get(k, '-')[:400].replace('|', '/')} |"
            for k, v in llm["outcomes"].items()
        ]
        m.append("")
    if llm["seconds_per_proposal"] is not None:
        m.append(f"{llm['seconds_per_proposal']:.1f} s per proposal on average.")
        m.append("")
    m += [f"- {line}" for line in spend_lines(llm["usage"])]
    return m


def _best_section(rep: Report) -> list[str]:
    run, best, seed = rep.run, rep.best, rep.seed
    m = ["## Best program", ""]
    if best is None:
        return m + ["No program has been evaluated ok yet.", ""]
    chain = rep.main_line
    runs, steps = len(best.runs), len(chain) - 1
    m.append(
        f"`{best.id[:12]}` ({best.operator}, birth {best.birth}, {runs} seed "
        f"run{'' if runs == 1 else 's'}): {run.metric} {_f(best.fitness)} ± "
        f"{_f(best.fitness_std, 3)}, {steps} step{'' if steps == 1 else 's'} from the seed."
    )
    if best.artifacts:
        m += ["", "Its evaluator's artifacts:", "", "```", _artifacts_text(best.artifacts), "```"]
    if seed is None or best.id == seed.id:
        return m + ["", "The best program is the seed: no edit beat it.", ""]
    if rep.gain is not None:
        rel = f" ({rep.gain / abs(seed.fitness):+.1%})" if seed.fitness else ""
        m.append(f"Gain over the seed: {rep.gain:+.6g}{rel} (positive = better).")
    m += [
        "",
        f"### Diff against the seed: {len(rep.edits)} hunk(s), one per changed top-level statement",
        "",
    ]
    for i, e in enumerate(rep.edits, 1):
        m.append(f"**{i}. {e.summary}** ({e.kind} `{e.key}`)")
        for line in _lineage_notes(chain, e.key.split("#")[0]):
            m.append(f"- {line}")
        m += ["", "```diff", e.diff().rstrip("\n"), "```", ""]
    return m


def _top_level_row(run: RunData) -> list[str]:
    """A cascade run's best at the highest level a program reached (what ``evo run`` and
    ``evo status`` report), when that is not the level this report analyses."""
    level = report_fidelity(run.store)
    best = run.store.best(level)
    if level == run.fidelity or best is None:
        return []
    return [
        f"| best {run.metric} at `{level}`, the highest level reached (what `evo run` and "
        f"`evo status` report) | {_f(best.fitness)} ± {_f(best.fitness_std, 3)} "
        f"(`{best.id[:12]}`) |"
    ]


def _artifacts_text(artifacts: dict[str, Any], limit: int = 4000) -> str:
    text = "\n".join(f"{k}: {v}" for k, v in artifacts.items())
    return text if len(text) <= limit else text[:limit] + "\n[...]"


def write_report(run_dir: str | Path, out: str | Path | None = None) -> tuple[Report, Path]:
    """Build the report of ``run_dir`` and write it (default ``RUN_DIR/report.md``).

    Raises:
        AnalysisError: the run dir is missing, empty, damaged or of a newer schema, or the
            output file cannot be written.
    """
    run = load_run(run_dir)
    rep = build_report(run)
    path = Path(out) if out is not None else run.run_dir / "report.md"
    try:
        path.write_text(render_report(rep), encoding="utf-8")
    except OSError as e:
        raise AnalysisError(
            f"{path}: cannot write the report ({e.strerror}); choose another --out"
        ) from None
    return rep, path
