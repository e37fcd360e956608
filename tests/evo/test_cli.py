"""The evo command on real targets and on bad input: one line, exit 2, nothing changed."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import evo
from tests.evo.loop_helpers import REPO, env, quadratic_target, run_evo


def _tree_digest(d: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in d.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(d)).encode() + f.read_bytes())
    return h.hexdigest()


def test_help_lists_every_subcommand():
    r = run_evo("--help")
    assert r.returncode == 0
    for cmd in ("run", "seed", "status", "best", "plot", "report", "ablate"):
        assert f"    {cmd}" in r.stdout, cmd


def test_circle_packing_and_openevolve_layout_end_to_end(tmp_path):
    r = run_evo(
        "run",
        "circle_packing",
        "--evaluations",
        "8",
        "--workers",  # one slot: which children are made (and how many of them pack all 26
        "1",  # circles) must not depend on which of two finished first (2 workers: 3 or 2 ok)
        "--run-dir",
        str(tmp_path / "cp"),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(run_evo("status", str(tmp_path / "cp"), "--json").stdout)
    assert info["evaluations"] == 8 and info["by_status"].get("ok", 0) >= 3
    assert 1.0 < info["best"]["fitness"] < 2.64
    r = run_evo(
        "run",
        str(REPO / "targets" / "function_minimization"),
        "--evaluations",
        "6",
        "--run-dir",
        str(tmp_path / "oe"),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    store = evo.open_run(tmp_path / "oe")
    assert store.meta["metric"] == "combined_score"
    ok = [p for p in store.programs.values() if p.status == "ok"]
    assert ok and all(0 < p.fitness <= 1 for p in ok)
    # only the EVOLVE-BLOCK changed in every child
    seed = (REPO / "targets" / "function_minimization" / "initial_program.py").read_text()
    outside = seed.split("# EVOLVE-BLOCK-END")[1]
    assert all(p.source.split("# EVOLVE-BLOCK-END")[1] == outside for p in ok)


def _broken_target(tmp_path: Path, edit) -> Path:
    target = quadratic_target(tmp_path)
    edit(target)
    return target


def test_target_errors_are_one_line_before_anything_runs(tmp_path):
    cases = {
        "missing harness": lambda t: (t / "measure.py").unlink(),
        "mistyped field": lambda t: (t / "target.toml").write_text(
            (t / "target.toml").read_text().replace("metric =", "metrc =")
        ),
        "bad direction": lambda t: (t / "target.toml").write_text(
            (t / "target.toml").read_text().replace('"minimize"', '"down"')
        ),
    }
    for i, (name, edit) in enumerate(cases.items()):
        target = _broken_target(tmp_path / str(i), edit)
        r = run_evo("run", str(target), "--run-dir", str(tmp_path / f"run{i}"))
        assert r.returncode == 2, name
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, name
        assert "target.toml" in lines[0] or "measure.py" in lines[0], name
        assert not (tmp_path / f"run{i}").exists(), name


def test_a_metric_the_program_never_writes_fails_the_baseline(tmp_path):
    target = quadratic_target(tmp_path)
    toml = target / "target.toml"
    toml.write_text(toml.read_text().replace('metric = "loss"', 'metric = "val_loss"'))
    r = run_evo("run", str(target), "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert r.returncode == 2
    assert "invalid_result" in r.stderr and "val_loss" in r.stderr


def test_bad_run_dirs_are_refused_and_left_as_they_were(tmp_path):
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    evo.run(target=str(target), run_dir=str(run_dir), evaluations=4)
    # a run dir locked by a live process
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from archive import RunStore; "
            "s = RunStore.open(sys.argv[1]); print('locked', flush=True); time.sleep(60)",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _tree_digest(run_dir)
        r = run_evo("run", str(target), "--run-dir", str(run_dir), "--evaluations", "8")
        assert r.returncode == 2 and "locked" in r.stderr and str(holder.pid) in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        r = run_evo("status", str(run_dir))  # readers never block
        assert r.returncode == 0, r.stderr
        assert _tree_digest(run_dir) == before
    finally:
        holder.kill()
        holder.wait()
    # a truncated archive.h5
    h5 = run_dir / "archive.h5"
    h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 2])
    before = _tree_digest(run_dir)
    for args in (
        ("status", str(run_dir)),
        ("best", str(run_dir)),
        ("run", str(target), "--run-dir", str(run_dir), "--evaluations", "8"),
    ):
        r = run_evo(*args)
        assert r.returncode == 2, args
        assert "archive.h5" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _tree_digest(run_dir) == before
    # not a run dir at all
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    r = run_evo("run", str(target), "--run-dir", str(other))
    assert r.returncode == 2 and "not an evo run dir" in r.stderr
    assert (other / "notes.txt").read_text() == "mine"
    shutil.rmtree(other)
