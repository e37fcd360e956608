"""The search loop end to end: real runs of a fast target in real subprocesses."""

from __future__ import annotations

import ast
import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import evo
from archive import RunStore
from evo.evaluation.sandbox import kill_marked
from tests.evo.loop_helpers import (
    env,
    evo_cmd,
    quadratic_target,
    run_evo,
    runs_in_store,
    search_config,
    write_config,
)


def _constants(source: str) -> tuple[float, ...]:
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in "XYZW":
                values[node.targets[0].id] = ast.literal_eval(node.value)
    return tuple(values[k] for k in "XYZW")


def test_run_spends_exactly_the_budget_and_beats_the_seed(tmp_path):
    target = quadratic_target(tmp_path)
    summary = evo.run(target=str(target), run_dir=str(tmp_path / "run"), evaluations=30, workers=2)
    assert summary.evaluations == 30
    assert summary.stopped == "evaluation budget reached"
    assert summary.improved and summary.best_fitness < summary.seed_fitness
    store = RunStore.read(tmp_path / "run")
    assert sum(len(p.runs) for p in store.programs.values()) == 30
    seed = store.programs[(store.meta["seed_id"], "default")]
    # The baseline: two identical runs show a deterministic evaluator, so nothing else is
    # measured twice.
    assert len(seed.runs) == 2 and seed.operator == "seed"
    # The two seed runs go out together, so either may finish first.
    assert sorted(r.why for r in seed.runs) == ["", "baseline"]
    assert summary.deterministic and summary.remeasured == {"baseline": 1}
    assert all(len(p.runs) == 1 for p in store.programs.values() if p.id != seed.id)
    assert (tmp_path / "run" / "archive.h5").is_file()
    for name in ("config.toml", "environment.json", "evo.log", "summary.json", "operators.json"):
        assert (tmp_path / "run" / name).is_file(), name
    envj = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert envj["target"]["checksums"]["measure.py"]
    assert envj["packages"]["numpy"]


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_resume_after_sigkill_loses_and_redoes_nothing(tmp_path):
    """evo run killed with SIGKILL at random moments, resumed each time, ends at the budget."""
    # Each kill comes 0-3 evaluations (and up to 0.3 s) into a start, so ten kills at random
    # instants (while starting, evaluating, writing) come before the budget is spent, on a
    # machine of any speed.
    budget, kills = 50, 0
    target = quadratic_target(tmp_path, log=True)
    log = tmp_path / "evaluations.log"
    cfg = write_config(tmp_path / "run.toml", target, tmp_path / "run", evaluations=budget)
    # No sandbox: the harness logs every evaluation to $BOWL_LOG, outside its working dir.
    cfg.write_text(cfg.read_text() + '[sandbox]\nkind = "none"\n')
    rng = random.Random(1234)
    for _attempt in range(40):
        proc = subprocess.Popen(
            evo_cmd("run", str(cfg), "--no-progress"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env(BOWL_SLEEP="0.15", BOWL_LOG=str(log)),
        )
        if kills < 10:
            start, more = _lines(log), rng.randint(0, 3)
            deadline = time.monotonic() + 60
            while proc.poll() is None and _lines(log) < start + more:
                assert time.monotonic() < deadline, "the run made no progress for 60 s"
                time.sleep(0.02)
            try:
                proc.wait(timeout=rng.uniform(0.0, 0.3))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        else:
            proc.wait(timeout=120)
        assert proc.returncode == 0, proc.stderr.read()
        break
    assert kills >= 10
    # The children a killed run left behind were ended by the next run; none remain.
    assert kill_marked(str((tmp_path / "run").resolve()), var="EVO_RUN_DIR", sig=0) == 0
    done = runs_in_store(tmp_path / "run")
    assert len(done) == budget  # exactly the budget, not one more
    assert len(set(done)) == len(done)  # no (program, seed) evaluated twice in the store
    store = RunStore.read(tmp_path / "run")
    logged = Counter(tuple(line.split(",")) for line in log.read_text().splitlines())
    recorded = Counter()
    for p in store.programs.values():
        for r in p.runs:
            recorded[tuple(repr(v) for v in _constants(p.source)) + (str(r.seed),)] += 1
    assert not recorded - logged, "a recorded evaluation never ran"
    # Only runs in flight at a kill (at most 2 slots each time) may have run twice.
    assert sum(logged.values()) - sum(recorded.values()) <= 2 * kills
    # The per-operator counts were rebuilt from the store at each resume, so ten kills at
    # random instants leave operators.json equal to what the store holds.
    counts = json.loads((tmp_path / "run" / "operators.json").read_text())
    children = Counter(p.operator for p in store.programs.values() if p.operator != "seed")
    assert {op: c.get("evaluated", 0) for op, c in counts.items() if op != "seed"} == {
        op: children[op] for op in counts if op != "seed"
    }
    assert sum(children.values()) == sum(c.get("evaluated", 0) for c in counts.values())


def test_ctrl_c_finishes_in_flight_children_and_checkpoints(tmp_path):
    target = quadratic_target(tmp_path)
    cfg = write_config(tmp_path / "run.toml", target, tmp_path / "run", evaluations=200)
    proc = subprocess.Popen(
        evo_cmd("run", str(cfg), "--no-progress"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(BOWL_SLEEP="0.3"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        journal = list((tmp_path / "run" / "journal").glob("*"))
        if journal and sum(f.read_text().count("\n") for f in journal) >= 8:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err  # stopped, not finished: scripts can tell
    assert "stopped by Ctrl-C" in out  # the table may wrap the rest of the line
    stopped = json.loads((tmp_path / "run" / "summary.json").read_text())["stopped"]
    assert stopped == "stopped by Ctrl-C: the runs in flight were finished"
    assert kill_marked(str((tmp_path / "run").resolve()), var="EVO_RUN_DIR", sig=0) == 0
    store = RunStore.read(tmp_path / "run")  # the checkpoint is readable
    assert 0 < len(runs_in_store(tmp_path / "run")) < 200
    assert not store.pending() or all(p.runs for p in store.pending())
    # Resuming picks up where it stopped and ends at the budget.
    r = run_evo("run", str(cfg), "--no-progress", "--evaluations", "30", BOWL_SLEEP="0")
    assert r.returncode == 0, r.stderr
    assert len(runs_in_store(tmp_path / "run")) == max(30, len(runs_in_store(tmp_path / "run")))


@pytest.mark.parametrize(
    "body, key",
    [
        ("[run]\nevaluations = 'ten'\n", "run.evaluations"),
        ("[run]\nbudget = 3\n", "run.budget"),
        ("[archive]\nselection = 'best'\n", "archive.selection"),
        ("[noise]\nseeds = 0\n", "noise.seeds"),
        ("[backend]\nkind = 'slurm'\n", "backend.kind"),
        ("[llm]\nformat = 'diff'\n", "llm.format"),
        ("[turbo]\nx = 1\n", "[turbo]"),
        ("[run]\nevaluations = \n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, body, key):
    cfg = tmp_path / "run.toml"
    cfg.write_text(body + "\n[backend]\nworkers = 1\n" if "[backend]" not in body else body)
    r = run_evo("run", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and str(cfg) in lines[0], r.stderr
    assert not (tmp_path / "run").exists()


def test_bad_flags_and_targets(tmp_path):
    r = run_evo("run", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 2 and "nowhere" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_evo("run", "circle_packing", "--fidelity", "huge", "--run-dir", str(tmp_path / "r"))
    assert r.returncode == 2 and "huge" in r.stderr
    r = run_evo("run", "circle_packing", "--evaluations", "0", "--run-dir", str(tmp_path / "r"))
    assert r.returncode == 2 and "run.evaluations" in r.stderr
    assert "command line: 'run.evaluations'" in r.stderr  # the flag is named, not a file
    assert not (tmp_path / "r").exists() and not (tmp_path / "run").exists()


def test_seed_that_fails_its_baseline_stops_the_run(tmp_path):
    target = quadratic_target(tmp_path)
    bowl = target / "bowl.py"
    bowl.write_text(bowl.read_text().replace("return X, Y, Z, W", "return X / 0, Y, Z, W"))
    r = run_evo("run", str(target), "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert r.returncode == 2
    assert "seed program fails its baseline" in r.stderr and "crash" in r.stderr
    assert "ZeroDivisionError" in r.stderr  # the tail of its stderr


def test_run_dir_of_another_config_is_refused_unless_force_new(tmp_path):
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    assert evo.run(target=str(target), run_dir=str(run_dir), evaluations=4).evaluations == 4
    r = run_evo("run", str(target), "--run-dir", str(run_dir), "--fidelity", "noisy")
    assert r.returncode == 2 and "another target or config" in r.stderr
    r = run_evo(
        "run",
        str(target),
        "--run-dir",
        str(run_dir),
        "--fidelity",
        "noisy",
        "--evaluations",
        "4",
        "--force-new",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    assert list(tmp_path.glob("run.old-*")), "the old run is kept beside the new one"


def test_hand_written_variants_are_evaluated_first(tmp_path):
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    good = tmp_path / "good.py"
    good.write_text((target / "bowl.py").read_text().replace("X = 3.0", "X = 1.0"))
    same = tmp_path / "same.py"
    same.write_text("# just a comment\n" + (target / "bowl.py").read_text())
    bad = tmp_path / "bad.py"
    bad.write_text("def broken(:\n")
    r = run_evo("seed", str(run_dir), str(bad), "--target", str(target))
    assert r.returncode == 2 and "bad.py" in r.stderr and "syntax" in r.stderr
    r = run_evo("seed", str(run_dir), str(good), str(same), "--target", str(target))
    assert r.returncode == 0, r.stderr
    assert "good.py: added" in r.stdout and "same.py: duplicate" in r.stdout
    summary = evo.run(target=str(target), run_dir=str(run_dir), evaluations=14)
    store = RunStore.read(run_dir)
    hand = [p for p in store.programs.values() if p.operator == "hand"]
    assert len(hand) == 1 and hand[0].status == "ok"
    dispatched = [
        line.split()[4]
        for line in (run_dir / "evo.log").read_text().splitlines()
        if " dispatch " in line
    ]
    children = [p.id[:10] for p in store.programs.values() if p.operator not in ("seed", "hand")]
    assert children and all(
        dispatched.index(hand[0].id[:10]) < dispatched.index(c) for c in children
    )
    assert summary.best_fitness <= hand[0].fitness + 1e-9
    r = run_evo("seed", str(tmp_path / "missing"), str(good))
    assert r.returncode == 2 and "missing" in r.stderr


def test_status_and_best_commands(tmp_path):
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    summary = evo.run(target=str(target), run_dir=str(run_dir), evaluations=12)
    r = run_evo("status", str(run_dir), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["evaluations"] == 12
    assert info["best"]["id"] == summary.best_id
    assert info["best"]["fitness"] == pytest.approx(summary.best_fitness)
    assert sum(info["by_status"].values()) == info["programs"]
    assert info["elites"] == summary.elites and info["coverage"] == summary.coverage
    assert info["emitter"] == summary.emitter
    r = run_evo("best", str(run_dir))
    assert r.returncode == 0 and "def work" in r.stdout
    r = run_evo("best", str(run_dir), "--diff")
    assert r.returncode == 0 and (r.stdout.startswith("---") or "is the seed" in r.stdout)
    r = run_evo("status", str(tmp_path / "nope"))
    assert r.returncode == 2 and "nope" in r.stderr and len(r.stderr.splitlines()) == 1


def _false_elites(run_dir: Path) -> tuple[int, int]:
    """(best changes, best changes whose true loss is not better than the previous best's)."""
    store = RunStore.read(run_dir)
    true = {p.id: p.metrics_mean().get("true_loss") for p in store.programs.values()}
    changes = false = 0
    prev_best, prev_id = None, None
    for row in store.history:
        if row.best is not None and row.best != prev_best and row.added in ("new", "improved"):
            if prev_id is not None:
                changes += 1
                false += true[row.id] >= true[prev_id]
            prev_id = row.id
        prev_best = row.best
    return changes, false


def test_noise_gate_cuts_false_elites_against_greedy_keep_discard(tmp_path):
    """On a noisy target near its optimum, greedy keep/discard on one draw keeps many edits
    that are not really better; the gate (more seeds, confidence bounds) keeps far fewer.

    One worker makes each run deterministic (the noise is seeded by program and seed, the
    search by ``run.seed``), so the counts depend on the code, not on which child of two in
    flight happened to finish first; six runs a mode keep them well above the thresholds."""
    target = quadratic_target(tmp_path, start=(1.4, -0.2, 0.55, 0.3))
    modes = {
        "greedy": {  # autoresearch's loop: local steps from the best, one draw each
            "archive": {"selection": "greedy", "descriptors": []},
            "operators": {"tpe": 0.0},
            "bandit": {"enabled": False},
            "noise": {"seeds": 1, "gate": 0.0, "max_seeds": 1, "z": 0.0},
        },
        "gated": {"noise": {"seeds": 3, "gate": 2.0, "max_seeds": 4, "z": 1.0}},
    }
    totals = {}
    for mode, extra in modes.items():
        changes = false = 0
        for rep in range(6):
            run_dir = tmp_path / f"{mode}{rep}"
            run = {"fidelity": "noisy", "seed": rep}
            cfg = search_config(target, run_dir, 60, workers=1, run=run, **extra)
            summary = evo.Search(cfg, progress=False).run()
            if mode == "gated":
                assert summary.gate_reevaluated > 0
            c, f = _false_elites(run_dir)
            changes, false = changes + c, false + f
        totals[mode] = (changes, false)
    greedy_c, greedy_f = totals["greedy"]
    gated_c, gated_f = totals["gated"]
    assert greedy_f >= 6, totals  # the noise really fools a single draw
    assert gated_f / max(gated_c, 1) < 0.5 * greedy_f / max(greedy_c, 1), totals


def test_failed_proposals_count_once_towards_the_dollar_budget(tmp_path):
    """LLM proposals that made no child still cost money (kept in counters.json across a
    resume); that cost counts once towards run.dollars, however many children follow."""
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    evo.Search(search_config(target, run_dir, 6, run={"dollars": 1.0}), progress=False).run()
    counters = json.loads((run_dir / "counters.json").read_text())
    (run_dir / "counters.json").write_text(json.dumps({**counters, "failed_proposal_cost": 0.4}))
    cfg = search_config(target, run_dir, 20, run={"dollars": 1.0})
    summary = evo.Search(cfg, progress=False).run()
    assert summary.stopped == "evaluation budget reached" and summary.evaluations == 20
    assert json.loads((run_dir / "counters.json").read_text())["failed_proposal_cost"] == 0.4
