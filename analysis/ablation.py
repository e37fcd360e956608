"""``evo ablate``: which edits of a program really matter, and whether they add up.

For a program (the best by default) split into per-statement edits against the seed
(:mod:`analysis.edits`), every edit is added alone to the seed and removed alone from the
program (leave-one-out). Each variant is evaluated with the run's seeds ``0..k-1`` through
the run's own evaluator (``evo.evaluation.evaluator.evaluate_program`` on local slots), so that every
comparison is paired seed by seed: a gain is the mean over seeds of the per-seed difference,
its uncertainty the standard error of those differences.

Additivity compares the sum of the single gains with the joint gain (program vs seed); their
difference, the interaction, is also computed seed by seed.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.edits import Edit, edit_set
from analysis.errors import AnalysisError
from analysis.rundata import RunData, load_run

ADDITIVE_TOLERANCE = 0.10
"""An interaction within this fraction of the summed single gains (or within 2 standard
errors) counts as additive: deterministic targets have no noise to hide behind."""


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds of paired differences, with its standard error."""

    mean: float
    se: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Estimate:
        n = len(values)
        se = statistics.stdev(values) / math.sqrt(n) if n >= 2 else 0.0
        return cls(statistics.fmean(values), se, n)

    def significant(self, tol: float) -> bool:
        """Different from 0 by more than 2 standard errors (and than ``tol``)."""
        return abs(self.mean) > max(2 * self.se, tol)

    def text(self) -> str:
        return f"{self.mean:+.4g} ± {self.se:.2g}"


@dataclass
class Variant:
    """One program evaluated for the ablation: its per-seed values (None where it failed)."""

    name: str
    source: str
    values: list[float | None] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.values) and all(v is not None for v in self.values)

    def failure(self) -> str:
        bad = [(s, r) for s, r in zip(self.statuses, self.reasons, strict=True) if s != "ok"]
        return f"{bad[0][0]}: {bad[0][1]}" if bad else ""


@dataclass
class EditResult:
    """What one edit does: alone on the seed, and missing from the program."""

    edit: Edit
    alone: Variant
    without: Variant
    gain_alone: Estimate | None
    loss_removed: Estimate | None
    verdict: str


@dataclass
class Ablation:
    """The whole ablation; :meth:`to_dict` is what ``ablation.json`` holds."""

    run_dir: Path
    program_id: str
    metric: str
    direction: str
    seeds: list[int]
    seed: Variant
    program: Variant
    edits: list[EditResult]
    joint: Estimate | None
    sum_gains: Estimate | None
    interaction: Estimate | None
    additivity: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def est(e: Estimate | None) -> dict[str, float] | None:
            return None if e is None else {"mean": e.mean, "se": e.se, "n": e.n}

        def var(v: Variant) -> dict[str, Any]:
            return {"name": v.name, "values": v.values, "statuses": v.statuses}

        return {
            "run_dir": str(self.run_dir),
            "program": self.program_id,
            "metric": self.metric,
            "direction": self.direction,
            "seeds": self.seeds,
            "seed_values": var(self.seed),
            "program_values": var(self.program),
            "edits": [
                {
                    "key": r.edit.key,
                    "kind": r.edit.kind,
                    "summary": r.edit.summary,
                    "gain_alone": est(r.gain_alone),
                    "loss_removed": est(r.loss_removed),
                    "alone": var(r.alone),
                    "without": var(r.without),
                    "verdict": r.verdict,
                }
                for r in self.edits
            ],
            "joint_gain": est(self.joint),
            "sum_of_single_gains": est(self.sum_gains),
            "interaction": est(self.interaction),
            "additivity": self.additivity,
            "notes": self.notes,
        }


def _paired(run: RunData, new: Variant, old: Variant) -> Estimate | None:
    """Per-seed improvement of ``new`` over ``old`` (positive = better), or None if either
    failed on some seed."""
    if not (new.ok and old.ok):
        return None
    return Estimate.of([run.gain(a, b) for a, b in zip(new.values, old.values, strict=True)])


def _edit_verdict(
    gain: Estimate | None, loss: Estimate | None, alone: Variant, without: Variant, tol: float
) -> str:
    if not alone.ok:
        return f"alone it breaks the seed ({alone.failure()})"
    if not without.ok:
        return f"removing it breaks the program ({without.failure()}): the others need it"
    assert gain is not None and loss is not None
    helps_alone = gain.significant(tol) and gain.mean > 0
    helps_within = loss.significant(tol) and loss.mean > 0
    if helps_alone and helps_within:
        return "matters: helps alone and is needed in the program"
    if helps_alone:
        return "helps alone, but the program does not need it (another edit covers it)"
    if helps_within:
        return "helps only together with the other edits"
    if (gain.significant(tol) and gain.mean < 0) or (loss.significant(tol) and loss.mean < 0):
        return "hurts: the program is better without it"
    return "no effect beyond noise"


def _additivity(
    n_edits: int, joint: Estimate | None, total: Estimate | None, inter: Estimate | None, tol: float
) -> str:
    if n_edits < 2:
        return "one edit only: nothing to add up"
    if joint is None or total is None or inter is None:
        return "cannot tell: a variant failed on some seed"
    allowed = max(2 * inter.se, ADDITIVE_TOLERANCE * abs(total.mean), tol)
    ratio = f"{joint.mean / total.mean:.0%}" if abs(total.mean) > tol else "n/a"
    if abs(inter.mean) <= allowed:
        return f"additive: the single gains add up to the joint gain (joint = {ratio} of the sum)"
    if inter.mean < 0:
        return (
            f"sub-additive: the edits overlap; together they give {ratio} of the sum of "
            "their single gains"
        )
    return (
        f"super-additive: the edits reinforce each other; together they give {ratio} of "
        "the sum of their single gains"
    )


def ablate(
    run_dir: str | Path,
    *,
    program: str | None = None,
    seeds: int | None = None,
    workers: int | None = None,
    on_result: Callable[[int, int], None] | None = None,
) -> Ablation:
    """Ablate the edits of a program of ``run_dir`` (default: its best) against the seed.

    Args:
        program: an id prefix of the program to ablate; None: the best.
        seeds: seeds per variant; None: the run's ``[noise] seeds`` (3 by default).
        workers: parallel evaluation slots; None: the run's ``[backend] workers``, else auto.
        on_result: called with (done, total) after each evaluation.

    Raises:
        AnalysisError: bad run dir, no ok program, the program is the seed, or its target
            cannot be loaded.
    """
    run = load_run(run_dir)
    seed = run.seed
    prog = run.find(program) if program else run.best
    if prog is None or seed is None:
        raise AnalysisError(
            f"{run.run_dir}: no program has been evaluated ok yet; nothing to ablate"
        )
    if prog.id == seed.id:
        raise AnalysisError(
            f"{run.run_dir}: the program is the seed itself; nothing to ablate "
            "(run the search longer, or pass --program ID)"
        )
    n_seeds = seeds if seeds is not None else int(run.config.get("noise", {}).get("seeds", 3))
    if n_seeds < 1:
        raise AnalysisError(f"--seeds must be >= 1, got {n_seeds}")
    es = edit_set(seed.source, prog.source)
    if not es.edits:
        raise AnalysisError(
            f"{run.run_dir}: program {prog.id[:12]} differs from the seed only "
            "in docstrings or comments; nothing to ablate"
        )
    keys = frozenset(e.key for e in es.edits)
    base = Variant("seed", seed.source)
    full = Variant(f"program {prog.id[:12]}", prog.source)
    variants = [base, full]
    alone = {e.key: Variant(f"seed + {e.summary}", es.compose({e.key})) for e in es.edits}
    without = {
        e.key: Variant(f"program - {e.summary}", es.compose(keys - {e.key})) for e in es.edits
    }
    variants += list(alone.values()) + list(without.values())
    notes = _evaluate(run, variants, n_seeds, workers, on_result)
    ok_base = [v for v in base.values if v is not None]
    tol = 1e-9 * max(1.0, abs(statistics.fmean(ok_base)) if ok_base else 1.0)
    results = []
    for e in es.edits:
        g = _paired(run, alone[e.key], base)
        loss = _paired(run, full, without[e.key])
        results.append(
            EditResult(
                e,
                alone[e.key],
                without[e.key],
                g,
                loss,
                _edit_verdict(g, loss, alone[e.key], without[e.key], tol),
            )
        )
    joint = _paired(run, full, base)
    total = inter = None
    if joint is not None and all(r.gain_alone is not None for r in results):
        per_seed = [
            sum(run.gain(r.alone.values[s], base.values[s]) for r in results)
            for s in range(n_seeds)
        ]
        total = Estimate.of(per_seed)
        inter = Estimate.of(
            [run.gain(full.values[s], base.values[s]) - per_seed[s] for s in range(n_seeds)]
        )
    return Ablation(
        run.run_dir,
        prog.id,
        run.metric,
        run.direction,
        list(range(n_seeds)),
        base,
        full,
        results,
        joint,
        total,
        inter,
        _additivity(len(results), joint, total, inter, tol),
        notes,
    )


def _evaluate(
    run: RunData,
    variants: list[Variant],
    n_seeds: int,
    workers: int | None,
    on_result: Callable[[int, int], None] | None,
) -> list[str]:
    """Evaluate every distinct variant with seeds 0..n-1 in parallel; fill in the values."""
    from evo.evaluation.evaluator import evaluate_program, remove_workdir
    from evo.evaluation.slots import LocalBackend, SlotError, make_slots
    from evo.target import TargetError, load_target
    from operators import canonical_hash

    meta = run.store.meta
    try:
        target = load_target(meta["target_root"])
    except (KeyError, TargetError) as e:
        raise AnalysisError(
            f"{run.run_dir}: cannot load the run's target "
            f"({meta.get('target_root')}): {e}; restore the target folder"
        ) from None
    notes = []
    if meta.get("checksums") and target.checksums() != meta["checksums"]:
        notes.append(
            "the target's files changed since the run: numbers may differ from the archive's"
        )
    cfg_run = run.config.get("run", {})
    timeout = float(cfg_run.get("timeout") or 0) or None
    memory = int(cfg_run.get("memory_mb") or 0) or None
    env = {k: os.environ[k] for k in cfg_run.get("pass_env", []) if k in os.environ}
    n_workers = workers or int(run.config.get("backend", {}).get("workers") or 0) or None
    try:
        slots = make_slots(n_workers)
    except SlotError as e:
        raise AnalysisError(f"--workers: {e}") from None
    # Variants that are the same program (two edits: leaving one out = the other alone) are
    # evaluated once.
    unique: dict[str, Variant] = {}
    for v in variants:
        unique.setdefault(canonical_hash(v.source), v)
    jobs = [(h, s) for h in unique for s in range(n_seeds)]
    results: dict[tuple[str, int], Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="evo-ablate-"))
    try:
        with LocalBackend(slots) as backend:
            futures = {}
            for i, (h, s) in enumerate(jobs):

                def job(slot, h=h, s=s, i=i):
                    return evaluate_program(
                        target,
                        unique[h].source,
                        workdir=tmp / f"{i:04d}",
                        fidelity=run.fidelity,
                        seed=s,
                        slot=slot,
                        timeout=timeout,
                        memory_mb=memory,
                        extra_env=env,
                    )

                futures[backend.submit(job)] = (h, s)
            for done, fut in enumerate(cf.as_completed(list(futures)), 1):
                results[futures[fut]] = fut.result()
                if on_result:
                    on_result(done, len(jobs))
    finally:
        remove_workdir(tmp)
    for v in variants:
        h = canonical_hash(v.source)
        for s in range(n_seeds):
            r = results[(h, s)]
            value = r.metrics.get(run.metric) if r.status == "ok" else None
            v.values.append(value)
            v.statuses.append(
                r.status if value is not None or r.status != "ok" else "invalid_result"
            )
            v.reasons.append(
                r.reason or ("" if value is not None else f"no {run.metric} in the result")
            )
    return notes


def render_ablation(ab: Ablation) -> str:
    """The ablation as Markdown."""

    def cell(e: Estimate | None, v: Any) -> str:
        return e.text() if e is not None else f"failed ({v.failure()[:60]})"

    seeds = f"seeds {ab.seeds[0]}..{ab.seeds[-1]}" if len(ab.seeds) > 1 else f"seed {ab.seeds[0]}"
    m = [
        f"# Ablation of program `{ab.program_id[:12]}` ({ab.run_dir})",
        "",
        f"Metric `{ab.metric}` ({ab.direction}); every variant evaluated with {seeds}; "
        "gains are paired per seed (positive = better), ± one standard error.",
        "",
        f"- seed: {_mean(ab.seed)}",
        f"- program: {_mean(ab.program)}",
        f"- joint gain (program vs seed): {cell(ab.joint, ab.program)}",
        "",
        "| # | edit | gain alone (seed + edit) | loss when removed (program - edit) | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, r in enumerate(ab.edits, 1):
        m.append(
            f"| {i} | {r.edit.summary} | {cell(r.gain_alone, r.alone)} | "
            f"{cell(r.loss_removed, r.without)} | {r.verdict} |"
        )
    m += ["", "## Additivity", ""]
    if ab.sum_gains is not None and ab.joint is not None and ab.interaction is not None:
        m.append(
            f"Sum of single gains {ab.sum_gains.text()} vs joint gain {ab.joint.text()}: "
            f"interaction {ab.interaction.text()}."
        )
        m.append("")
    m += [f"**{ab.additivity}**", ""]
    m += [f"- note: {n}" for n in ab.notes]
    return "\n".join(m) + "\n"


def _mean(v: Variant) -> str:
    if not v.ok:
        return f"failed ({v.failure()})"
    vals = [x for x in v.values if x is not None]
    return f"{statistics.fmean(vals):.6g} (per seed: {', '.join(f'{x:.6g}' for x in vals)})"


def write_ablation(ab: Ablation) -> tuple[Path, Path]:
    """Write ``RUN_DIR/ablation.md`` and ``RUN_DIR/ablation.json`` (analysis output, not the
    store)."""
    md, js = ab.run_dir / "ablation.md", ab.run_dir / "ablation.json"
    try:
        md.write_text(render_ablation(ab), encoding="utf-8")
        js.write_text(json.dumps(ab.to_dict(), indent=1) + "\n", encoding="utf-8")
    except OSError as e:
        raise AnalysisError(f"{ab.run_dir}: cannot write the ablation ({e.strerror})") from None
    return md, js
