"""evo report: its numbers are the archive's; the best's diff hunk by hunk; the CLI."""

from __future__ import annotations

import re
import statistics

import pytest

import analysis
from archive import estimate_noise, remeasurement_runs
from evo.cli import main, status_dict
from operators import canonical_hash


def test_report_numbers_equal_the_archive(cp_run, tmp_path):
    run = analysis.load_run(cp_run.run_dir)
    store, fid = run.store, run.fidelity
    rep, path = analysis.write_report(cp_run.run_dir, tmp_path / "report.md")
    best, stats, st = store.best(fid), store.elites(fid).stats(), status_dict(store)

    assert rep.best.id == best.id and rep.best.fitness == best.fitness
    assert (rep.elites, rep.cells, rep.coverage, rep.qd_score) == (
        stats.elites,
        stats.cells,
        stats.coverage,
        stats.qd_score,
    )
    assert rep.by_status == store.counts_by_status()
    assert rep.seed_runs == st["evaluations"] == sum(len(p.runs) for p in store.programs.values())
    assert rep.evaluations == len(store.history)
    assert rep.cost == st["cost"] and rep.tokens == st["tokens"]

    seed = store.programs[(store.meta["seed_id"], fid)]
    assert rep.seed.fitness == seed.fitness
    level = [p for p in store.programs.values() if p.fidelity == fid]
    assert rep.noise == estimate_noise(level, run.metric) and rep.noise.floor > 0
    assert rep.noise.dof >= 2 and not rep.noise.deterministic  # circle_packing uses EVO_SEED
    assert rep.noise_seeds == len(seed.runs) == 3
    assert rep.remeasured == remeasurement_runs(store.programs.values()) == st["remeasured"]
    assert rep.remeasured["baseline"] == 2

    children = [h for h in store.history if h.id != seed.id]
    inserted = [h for h in children if h.added in ("new", "improved")]
    assert (rep.hit.children, rep.hit.inserted) == (len(children), len(inserted))
    assert rep.hit.rate == len(inserted) / len(children)
    assert sum(w.inserted for w in rep.windows) == len(inserted)
    assert rep.windows[0].start == 0 and rep.windows[-1].end == len(store.history)

    for status, (n, _) in rep.failures.items():
        assert n == store.counts_by_status()[status]

    summary = run.summary  # written by the loop at the end of the run
    assert summary is not None
    assert len(rep.rejected) == summary["gate_rejected"]
    assert rep.gated == summary["gate_reevaluated"] >= len(rep.rejected) + len(rep.faded)
    assert rep.noise.floor == summary["noise_floor"]
    assert rep.remeasured == summary["remeasured"]
    assert rep.best.id == summary["best_id"]

    md = path.read_text()
    assert md == analysis.render_report(rep)
    for text in (
        f"{best.fitness:.6g}",
        f"{rep.hit.rate:.1%}",
        f"{rep.noise.floor:.4g}",
        f"Runs that went to re-measurement: {sum(rep.remeasured.values())}.",
        f"| programs finished | {len(store.history)} |",
        f"{stats.elites} / {stats.cells}",
        best.id[:12],
    ):
        assert text in md, text
    steps, runs = len(rep.main_line) - 1, len(best.runs)
    step_words = f"{steps} step{'' if steps == 1 else 's'} from the seed."
    assert step_words in md and f"{runs} seed run{'' if runs == 1 else 's'})" in md
    assert not re.search(r"\b1 (steps|seed runs)\b", md)  # counts agree with their nouns


def test_best_diff_is_split_into_independent_hunks(cp_run):
    run = analysis.load_run(cp_run.run_dir)
    rep = analysis.build_report(run)
    seed, best = run.seed, run.best
    assert best.id != seed.id and rep.edits
    es = analysis.edit_set(seed.source, best.source)
    keys = {e.key for e in es.edits}
    assert canonical_hash(es.compose(set())) == seed.id
    assert canonical_hash(es.compose(keys)) == best.id
    for e in es.edits:  # each hunk applies alone, and is exactly that hunk
        alone = analysis.edit_set(seed.source, es.compose({e.key})).edits
        assert [(a.key, a.code) for a in alone] == [(e.key, e.code)]
    md = analysis.render_report(rep)
    assert md.count("```diff") == len(rep.edits)
    for e in rep.edits:
        assert e.summary in md


def test_planted_variant_hunks_are_its_two_constants(cp_run):
    run = analysis.load_run(cp_run.run_dir)
    planted = run.program(cp_run.ids["planted"])
    assert planted.operator == "hand" and planted.status == "ok"
    edits = analysis.edit_set(run.seed.source, planted.source).edits
    assert [(e.key, e.kind, e.summary) for e in edits] == [
        ("STEP_SIZE", "changed", "STEP_SIZE: 0.03 -> 0.1"),
        ("STEP_DECAY", "changed", "STEP_DECAY: 0.99 -> 0.999"),
    ]
    assert "-STEP_SIZE = 0.03" in edits[0].diff() and "+STEP_SIZE = 0.1" in edits[0].diff()


def test_operator_table_matches_the_programs(cp_run):
    run = analysis.load_run(cp_run.run_dir)
    rows = {r.operator: r for r in analysis.operator_table(run)}
    finished = run.finished
    assert sum(r.evaluated for r in rows.values()) == len(finished)
    assert sum(r.ok for r in rows.values()) == sum(p.status == "ok" for p in finished)
    assert sum(r.new for r in rows.values()) == sum(h.added == "new" for h in run.history)
    assert rows["seed"].evaluated == 1 and rows["hand"].evaluated == 1
    assert run.operators is not None  # the loop's counters: duplicates are known
    for name, counts in run.operators.items():
        assert rows[name].duplicates == counts.get("duplicate", 0) + counts.get("rejected_noop", 0)
    shares = {n: r.share for n, r in rows.items() if r.share is not None}  # the bandit's
    assert shares == run.counters["operator_shares"] and sum(shares.values()) == pytest.approx(1)
    assert rows["seed"].share is None and "tpe" in shares


def test_report_cli_prints_and_writes(quad_run, capsys):
    assert main(["report", str(quad_run.run_dir)]) == 0
    out = capsys.readouterr().out
    written = (quad_run.run_dir / "report.md").read_text()
    assert "## Hit rate" in out and "## Noise" in written
    assert written.strip() in out
    # the quadratic is deterministic at its default fidelity: no noise to measure
    seed = analysis.load_run(quad_run.run_dir).seed
    assert statistics.pstdev(r_.metrics["loss"] for r_ in seed.runs) == 0.0
    assert "The evaluator is **deterministic**" in written
