"""The cascade: search at a cheap fidelity, promote the best, report how rankings transfer."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import evo
from analysis.rundata import load_run
from analysis.transfer import transfers
from tests.evo.loop_helpers import REPO, quadratic_target, run_evo, search_config


def _small_tinygpt(tmp: Path) -> Path:
    """tinygpt with its tiny and small fidelities shrunk so a test trains in seconds."""
    dst = tmp / "tinygpt"
    shutil.copytree(REPO / "targets" / "tinygpt", dst)
    toml = (dst / "target.toml").read_text()
    sizes = {"tiny": ("40000", "8192", "300000"), "small": ("80000", "8192", "300000")}
    for level, (tokens, val, data) in sizes.items():
        block = re.search(rf"\[fidelity\.{level}\]\n.*?\n(?=\n)", toml, re.S).group(0)
        new = re.sub(r'TINYGPT_BUDGET_TOKENS = "\d+"', f'TINYGPT_BUDGET_TOKENS = "{tokens}"', block)
        new = re.sub(r'TINYGPT_VAL_TOKENS = "\d+"', f'TINYGPT_VAL_TOKENS = "{val}"', new)
        new = re.sub(r'TINYGPT_DATA_BYTES = "\d+"', f'TINYGPT_DATA_BYTES = "{data}"', new)
        toml = toml.replace(block, new)
    (dst / "target.toml").write_text(toml)
    return dst


def test_tinygpt_cascade_promotes_and_reports_transfer(tmp_path):
    target = _small_tinygpt(tmp_path)
    run_dir = tmp_path / "run"
    cfg = search_config(
        target,
        run_dir,
        10,
        cascade={"levels": ["tiny", "small"], "top_fraction": 1.0},
        noise={"seeds": 1, "max_seeds": 1},
        # Promotion is under test, not the search: TPE's random first draws train models up
        # to several times the seed's size (a minute more on 2 cores); small steps keep it short.
        operators={"tpe": 0.0, "tpe_local": 0.0},
    )
    summary = evo.Search(cfg, progress=False).run()
    assert summary.evaluations == 10
    store = evo.open_run(run_dir)
    at = {
        lvl: [p for p in store.programs.values() if p.fidelity == lvl and p.ok]
        for lvl in ("tiny", "small")
    }
    promoted = [p for p in at["small"] if p.id != store.meta["seed_id"]]
    assert promoted, "nothing was promoted to small"
    assert all((p.id, "tiny") in store.programs for p in promoted)
    assert summary.fidelity == "small"  # the best is reported at the highest level reached
    assert summary.best_fitness == min(p.fitness for p in at["small"])
    # small trains twice the tokens: every program scores better there than at tiny
    for p in at["small"]:
        assert p.fitness < store.programs[(p.id, "tiny")].fitness
    (t,) = transfers(load_run(run_dir))
    assert (t.low, t.high) == ("tiny", "small") and len(t.pairs) == len(at["small"])
    if len(t.pairs) >= 3:
        assert t.spearman is not None and -1 <= t.spearman <= 1
    r = run_evo("report", str(run_dir))
    assert r.returncode == 0 and "Transfer between levels" in (run_dir / "report.md").read_text()


def test_quadratic_cascade_transfer_correlation_and_reserved_slots(tmp_path):
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    cfg = search_config(
        target,
        run_dir,
        40,
        cascade={"levels": ["default", "noisy"], "top_fraction": 0.5, "reserve": [1]},
    )
    summary = evo.Search(cfg, progress=False).run()
    assert summary.evaluations == 40 and summary.fidelity == "noisy"
    (t,) = transfers(load_run(run_dir))
    assert len(t.pairs) >= 3 and t.spearman is not None
    assert t.spearman > 0.5  # the noisy level measures the same bowl
    assert t.interval[0] <= t.spearman <= t.interval[1]
    log = (run_dir / "evo.log").read_text()
    assert "promote" in log and " noisy " in log


def test_bad_cascades_are_one_line_errors(tmp_path):
    target = quadratic_target(tmp_path)
    for body, key in (
        ('levels = ["default", "huge"]', "huge"),
        ('levels = ["default", "noisy"]\nreserve = [2]', "cascade.reserve"),
        ('promote = "luck"', "cascade.promote"),
    ):
        cfg = tmp_path / "run.toml"
        cfg.write_text(f'[run]\ntarget = "{target}"\n[cascade]\n{body}\n[backend]\nworkers = 2\n')
        r = run_evo("run", str(cfg), "--run-dir", str(tmp_path / "run"))
        assert r.returncode == 2 and key in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "run").exists()
