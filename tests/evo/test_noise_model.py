"""The noise model learns the evaluator: a deterministic one never measures a program twice; a
noisy one keeps the gate, with a floor pooled over every re-measured program."""

from __future__ import annotations

import io
import json
import math
import statistics
from pathlib import Path

from loop_helpers import quadratic_target, search_config

import evo
from archive import NoiseEstimate, RunStore, estimate_noise, remeasurement_runs
from evo.noise import floor_upper_bound
from evo.progress import print_summary, verdict
from evo.rundir import RunSummary


def slow_second_seed(tmp: Path) -> Path:
    """noisy_quadratic whose runs with EVO_SEED=1 (the seed's second baseline run) take 1.5 s,
    so children's first runs finish before the seed's baseline does."""
    target = quadratic_target(tmp)
    m = target / "measure.py"
    m.write_text(
        "import os, time\nif os.environ.get('EVO_SEED') == '1':\n    time.sleep(1.5)\n"
        + m.read_text()
    )
    return target


def runs_by_program(run_dir: Path) -> dict[str, list]:
    store = RunStore.read(run_dir)
    return {p.id: p.runs for p in store.programs.values()}, store


def test_a_deterministic_evaluator_measures_nothing_twice(tmp_path):
    """Children that finish while the seed's baseline still runs wait for its verdict (the
    evaluator ignores EVO_SEED), and are then not re-measured: one run each, none gated."""
    target = slow_second_seed(tmp_path)
    run_dir = tmp_path / "run"
    cfg = search_config(target, run_dir, 16, workers=2)
    summary = evo.Search(cfg, progress=False).run()
    runs, store = runs_by_program(run_dir)
    seed_id = store.meta["seed_id"]
    assert [r.why for r in runs[seed_id]] == ["", "baseline"]  # two runs establish it
    assert all(len(r) == 1 for pid, r in runs.items() if pid != seed_id)
    assert summary.evaluations == 16 and summary.remeasured == {"baseline": 1}
    assert summary.deterministic and summary.noise_floor == 0.0
    assert summary.gate_reevaluated == 0 and summary.gate_rejected == 0
    # children ran while the seed's slow second run did: they were held, then decided
    log = (run_dir / "evo.log").read_text().splitlines()
    seed_done = next(i for i, line in enumerate(log) if f"{seed_id[:10]} default seed ok" in line)
    early = [line for line in log[:seed_done] if " dispatch " in line and seed_id[:10] not in line]
    assert early, log[:seed_done]
    info = json.loads((run_dir / "summary.json").read_text())
    assert info["remeasured"] == {"baseline": 1} and info["deterministic"] is True


def test_a_noisy_evaluator_keeps_the_gate_with_a_pooled_floor(tmp_path):
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    cfg = search_config(target, run_dir, 30, workers=1, run={"fidelity": "noisy"})
    summary = evo.Search(cfg, progress=False).run()
    runs, store = runs_by_program(run_dir)
    seed_id = store.meta["seed_id"]
    assert [r.why for r in runs[seed_id]] == ["", "baseline", "baseline"]
    assert not summary.deterministic
    gated = {pid: r for pid, r in runs.items() if any(x.why for x in r) and pid != seed_id}
    assert gated and summary.gate_reevaluated == len(gated)
    done = [pid for pid in gated if store.programs[(pid, "noisy")].status != "pending"]
    assert done and all(len(gated[pid]) == 3 for pid in done)  # noise.max_seeds
    assert {x.why for r in gated.values() for x in r[1:]} <= {"confirm_best", "within_noise"}
    # the floor is pooled over the seed and every re-measured child, not the seed alone
    level = [p for p in store.programs.values() if p.fidelity == "noisy"]
    est = estimate_noise(level, "loss")
    seed_only = statistics.stdev(r.metrics["loss"] for r in runs[seed_id])
    assert summary.noise_floor == est.floor and est.programs == 1 + len(gated)
    assert est.dof == sum(len(r) - 1 for r in gated.values()) + 2
    assert not math.isclose(est.floor, seed_only)
    counts = remeasurement_runs(store.programs.values())
    assert summary.remeasured == counts and counts["baseline"] == 2


def test_noise_seeds_one_learns_the_noise_from_confirmations(tmp_path):
    """With a single baseline run the noise is unknown: the first would-be best is confirmed,
    and once its two runs agree the evaluator is known to be deterministic."""
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    cfg = search_config(target, run_dir, 20, workers=1, noise={"seeds": 1})
    summary = evo.Search(cfg, progress=False).run()
    runs, store = runs_by_program(run_dir)
    confirmed = [r for r in runs.values() if len(r) > 1]
    assert len(runs[store.meta["seed_id"]]) == 1
    assert len(confirmed) == 1 and confirmed[0][1].why == "confirm_best"
    assert summary.deterministic and summary.remeasured == {"confirm_best": 2}


def test_resume_rebuilds_the_gate_from_the_journal(tmp_path):
    """counters.json lost or stale: the gate's counts and pool come from the store."""
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    cfg = search_config(target, run_dir, 20, workers=2, run={"fidelity": "noisy"})
    first = evo.Search(cfg, progress=False).run()
    (run_dir / "counters.json").unlink()
    cfg = search_config(target, run_dir, 20, workers=2, run={"fidelity": "noisy"})
    again = evo.Search(cfg, progress=False).run()
    assert again.evaluations == 20
    assert (again.gate_reevaluated, again.gate_rejected) == (
        first.gate_reevaluated,
        first.gate_rejected,
    )
    assert again.noise_floor == first.noise_floor and again.remeasured == first.remeasured


def test_the_floor_is_not_trusted_far_on_few_degrees_of_freedom():
    """The 99% chi-square bound: a floor from the seed's three draws may be ten times too low
    (they can agree by chance); from many draws the bound nears the estimate."""
    assert floor_upper_bound(NoiseEstimate()) == math.inf  # nothing measured twice
    few = floor_upper_bound(NoiseEstimate(floor=0.1, dof=2, programs=1))
    many = floor_upper_bound(NoiseEstimate(floor=0.1, dof=200, programs=80))
    assert 0.9 < few < 1.1 and 0.1 < many < 0.12
    assert floor_upper_bound(NoiseEstimate(floor=0.0, dof=5, programs=5)) == 0.0


def _summary(best: float, floor: float, dof: int, *, deterministic: bool = False) -> RunSummary:
    return RunSummary(
        run_dir=Path("run"), evaluations=40, by_status={"ok": 40}, seed_fitness=1.0,
        noise_floor=floor, best_id="ab" * 32, best_fitness=best, best_std=None,
        improved=True, noise_dof=dof, deterministic=deterministic, remeasured={},
        operator_shares={}, elites=5, coverage=0.5, qd_score=1.0, gate_rejected=0,
        gate_reevaluated=0, stopped="evaluation budget reached", metric="loss",
    )  # fmt: skip


def test_the_closing_verdict_weighs_the_gain_against_the_noise_floor():
    """A gain under twice the floor is called a lead, not a result, and the floor says how
    many degrees of freedom it rests on (a new user took 1.4x the floor for a finding)."""
    lead = verdict(_summary(0.93, 0.05, 6))
    assert "1.4x the noise floor 0.05" in lead and "6 degrees of freedom" in lead
    assert "a lead, not yet a result" in lead
    clear = verdict(_summary(0.5, 0.05, 1))
    assert "10.0x the noise floor" in clear and "1 degree of freedom" in clear
    assert "a lead" not in clear
    exact = verdict(_summary(0.9, 0.0, 4, deterministic=True))
    assert "deterministic" in exact and "a lead" not in exact


def test_the_closing_table_shows_brackets_as_written(tmp_path, monkeypatch):
    """A stop reason, a run dir's name or an emitter note can hold ``[...]``: rich would read
    it as a style tag (and crash on ``[/x]``); the closing table and verdict print it as is."""
    summary = _summary(0.5, 0.05, 4)
    summary.run_dir = tmp_path / "runs [a/b] [/x]"
    summary.stopped = "seed failed: KeyError [/bold] in [descriptors]"
    summary.emitter_off = "off: declare [descriptors] in target.toml"
    monkeypatch.setenv("COLUMNS", "400")  # one line per row
    out = io.StringIO()
    print_summary(summary, file=out)
    text = out.getvalue()
    for shown in ("KeyError [/bold] in [descriptors]", "declare [descriptors] in", "[/x]"):
        assert shown in text


def test_the_closing_table_says_what_each_operators_children_did(monkeypatch):
    """Operator rows are words, not counter keys (a new user read ``no_child 1`` and ``new``
    as jargon, and "evaluated" hid that some crashed)."""
    summary = _summary(0.5, 0.05, 4)
    summary.operators = {
        "seed": {"new": 1},
        "tpe": {"evaluated": 9, "crash": 2, "new": 3, "improved": 1, "duplicate": 4},
        "merge": {"no_child": 5, "rejected_syntax": 1},
    }
    summary.operator_shares = {"tpe": 0.7, "merge": 0.3}
    monkeypatch.setenv("COLUMNS", "400")
    out = io.StringIO()
    print_summary(summary, file=out)
    lines = [line.split("│") for line in out.getvalue().splitlines() if line.count("│") == 3]
    rows = {cells[1].strip(): cells[2].strip() for cells in lines}
    ops = [k for k in rows if k.startswith(("seed program", "operator"))]
    assert ops == ["seed program", "operator merge", "operator tpe"]
    assert rows["seed program"] == "1 took an empty cell"
    assert rows["operator tpe"] == (
        "share 70%; 9 evaluated (2 crash), 3 took an empty cell, 1 beat a cell's elite; "
        "not run: 4 duplicates"
    )
    assert rows["operator merge"] == (
        "share 30%; none evaluated; not run: 5 proposals that made no child, "
        "1 rejected by the checks (syntax)"
    )
