"""evo ablate: planted edits are found, their gains measured seed by seed through the run's
evaluator, and their additivity judged right (checked against independent evaluations and
against exact values on a deterministic quadratic)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from analysis_helpers import CIRCLE, substitute

import analysis
from analysis import AnalysisError
from analysis.ablation import ADDITIVE_TOLERANCE
from evo.cli import main
from evo.evaluation.evaluator import evaluate_program
from evo.target import load_target


def test_planted_circle_packing_edits_are_found_and_add_up_as_measured(cp_run, tmp_path):
    run = analysis.load_run(cp_run.run_dir)
    ab = analysis.ablate(cp_run.run_dir, program=cp_run.ids["planted"][:10], workers=2)
    assert ab.seeds == [0, 1, 2]  # the run's [noise] seeds
    assert [r.edit.key for r in ab.edits] == ["STEP_SIZE", "STEP_DECAY"]
    for r in ab.edits:  # each edit alone is a clear improvement
        assert r.gain_alone.mean > 2 * r.gain_alone.se and r.gain_alone.mean > 0.1
        assert r.verdict.startswith(("matters", "helps alone")), r.verdict

    # The same evaluator as the run: the seed's values are the archive's, seed by seed.
    archived = {sr.seed: sr.metrics["sum_radii"] for sr in run.seed.runs}
    assert ab.seed.values == [archived[s] for s in ab.seeds]
    planted = run.program(cp_run.ids["planted"])
    assert ab.program.values[0] == planted.runs[0].metrics["sum_radii"]

    # Ground truth, independent of analysis.edits: the four programs written by hand.
    seed_src = (CIRCLE / "pack.py").read_text()
    sources = {
        "seed": seed_src,
        "size": substitute(seed_src, STEP_SIZE="0.1"),
        "decay": substitute(seed_src, STEP_DECAY="0.999"),
        "both": substitute(seed_src, STEP_SIZE="0.1", STEP_DECAY="0.999"),
    }
    target = load_target(CIRCLE)

    def value(job: tuple[str, int]) -> float:
        name, s = job
        r = evaluate_program(target, sources[name], workdir=tmp_path / f"{name}-{s}", seed=s)
        assert r.status == "ok", r.reason
        return r.metrics["sum_radii"]

    jobs = [(n, s) for n in sources for s in range(3)]
    with ThreadPoolExecutor(2) as pool:
        v = dict(zip(jobs, pool.map(value, jobs), strict=True))
    mean = {n: sum(v[(n, s)] for s in range(3)) / 3 for n in sources}
    gain = {n: mean[n] - mean["seed"] for n in sources}
    by_key = {r.edit.key: r for r in ab.edits}
    assert by_key["STEP_SIZE"].gain_alone.mean == pytest.approx(gain["size"], abs=1e-12)
    assert by_key["STEP_DECAY"].gain_alone.mean == pytest.approx(gain["decay"], abs=1e-12)
    assert by_key["STEP_SIZE"].loss_removed.mean == pytest.approx(
        mean["both"] - mean["decay"], abs=1e-12
    )
    assert ab.joint.mean == pytest.approx(gain["both"], abs=1e-12)
    assert ab.sum_gains.mean == pytest.approx(gain["size"] + gain["decay"], abs=1e-12)
    interaction = gain["both"] - gain["size"] - gain["decay"]
    assert ab.interaction.mean == pytest.approx(interaction, abs=1e-12)
    # Both edits speed up the hill climb's exploration: together they overlap, far beyond
    # the tolerance, so the verdict must be sub-additive (measured: joint ~ half the sum).
    assert interaction < -ADDITIVE_TOLERANCE * (gain["size"] + gain["decay"])
    assert ab.additivity.startswith("sub-additive"), ab.additivity

    md, js = analysis.write_ablation(ab)
    data = json.loads(js.read_text())
    assert [e["key"] for e in data["edits"]] == ["STEP_SIZE", "STEP_DECAY"]
    assert data["additivity"] == ab.additivity
    text = md.read_text()
    assert "STEP_SIZE: 0.03 -> 0.1" in text and "sub-additive" in text


def test_separable_edits_are_additive_exactly_through_the_cli(quad_run, capsys):
    """X and Y moved to their optima on a separable bowl: gains 4 and 2.25, joint 6.25."""
    assert (
        main(
            [
                "ablate",
                str(quad_run.run_dir),
                "--program",
                quad_run.ids["additive"][:12],
                "--workers",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    data = json.loads((quad_run.run_dir / "ablation.json").read_text())
    gains = {e["key"]: e["gain_alone"]["mean"] for e in data["edits"]}
    losses = {e["key"]: e["loss_removed"]["mean"] for e in data["edits"]}
    assert gains == pytest.approx({"X": 4.0, "Y": 2.25}, abs=1e-9)
    assert losses == pytest.approx({"X": 4.0, "Y": 2.25}, abs=1e-9)
    assert data["joint_gain"]["mean"] == pytest.approx(6.25, abs=1e-9)
    assert data["interaction"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert data["additivity"].startswith("additive")
    assert all(e["verdict"].startswith("matters") for e in data["edits"])
    assert "**additive" in out and (quad_run.run_dir / "ablation.md").is_file()


def test_redundant_edits_are_sub_additive_and_neither_is_needed(quad_run):
    """W = 0 and work() returning 0 for W do the same thing: each gains 2.25, both 2.25."""
    ab = analysis.ablate(
        quad_run.run_dir, program=quad_run.ids["redundant"][:12], seeds=1, workers=2
    )
    assert sorted(r.edit.key for r in ab.edits) == ["W", "work"]
    for r in ab.edits:
        assert r.gain_alone.mean == pytest.approx(2.25, abs=1e-9)
        assert r.loss_removed.mean == pytest.approx(0.0, abs=1e-9)
        assert r.verdict.startswith("helps alone, but the program does not need it")
    assert ab.joint.mean == pytest.approx(2.25, abs=1e-9)
    assert ab.sum_gains.mean == pytest.approx(4.5, abs=1e-9)
    assert ab.additivity.startswith("sub-additive") and "50%" in ab.additivity


def test_nothing_to_ablate_is_a_clear_error(quad_run):
    seed_id = analysis.load_run(quad_run.run_dir).seed_id
    with pytest.raises(AnalysisError, match="the program is the seed itself"):
        analysis.ablate(quad_run.run_dir, program=seed_id[:12])
    with pytest.raises(AnalysisError, match="no program with an id starting"):
        analysis.ablate(quad_run.run_dir, program="zzzz")
    with pytest.raises(AnalysisError, match="--seeds must be >= 1"):
        analysis.ablate(quad_run.run_dir, program=quad_run.ids["additive"][:12], seeds=0)
