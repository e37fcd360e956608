"""OpenEvolve folders run as they are: config.yaml read as evo's config, staged evaluators as
evo's cascade with OpenEvolve's thresholds, EvaluationResult artifacts kept and shown."""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path

import pytest

import evo
from archive import Dim, Program, RunStore, SeedRun
from evo.cascade import Cascade
from evo.cli import main
from evo.config import ConfigError, load_config, to_toml, tomllib
from evo.openevolve_config import openevolve_layer
from evo.target import load_target
from tests.evo.loop_helpers import run_evo

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CASCADE = FIXTURES / "openevolve_cascade"
ARTIFACTS = FIXTURES / "openevolve_artifacts"
PLAIN = FIXTURES / "openevolve_plain"
LITERAL_KEY = "sk-fixture-0123456789abcdef"  # written out in openevolve_plain/config.yaml


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["run", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def _resolved(run_dir: Path) -> dict:
    return tomllib.loads((run_dir / "config.toml").read_text())


def test_cascade_fixture_promotes_by_threshold_stage_by_stage(tmp_path, capsys):
    before = _digest(CASCADE)
    run_dir = tmp_path / "run"
    # The seed's baseline at both stages (2 runs each), then two hand-written variants, one on
    # each side of the 0.5 threshold, evaluated first by the resumed run.
    rc, _, err = _run(
        capsys, str(CASCADE), "--run-dir", str(run_dir), "--no-llm", "--evaluations", "4"
    )
    assert rc == 0, err
    seed = (CASCADE / "initial_program.py").read_text()
    low, high = tmp_path / "low.py", tmp_path / "high.py"
    low.write_text(seed.replace("STEPS = 20 ", "STEPS = 2  "))  # stage1 score 0.22
    high.write_text(seed.replace("STEPS = 20 ", "STEPS = 40 "))  # stage1 score 0.99
    assert main(["seed", str(run_dir), str(low), str(high)]) == 0
    rc, _, err = _run(capsys, str(CASCADE), "--run-dir", str(run_dir), "--no-llm")
    assert rc == 0, err

    cfg = _resolved(run_dir)
    assert cfg["cascade"] == {
        "levels": ["stage1", "stage2"],
        "promote": "threshold",
        "top_fraction": 0.2,
        "reserve": [],
        "thresholds": [0.5],
    }
    assert (cfg["run"]["evaluations"], cfg["run"]["seed"], cfg["run"]["timeout"]) == (14, 7, 20.0)
    assert cfg["run"]["openevolve_config"] == str(CASCADE / "config.yaml")
    assert cfg["backend"]["workers"] == 2 and cfg["llm"]["format"] == "search_replace"
    assert cfg["llm"]["base_url"] == ""  # --no-llm over the YAML's api_base

    store = evo.open_run(run_dir)
    assert store.meta["levels"] == ["stage1", "stage2"]
    by_source = {p.source: p.id for p in store.programs.values()}
    low_id, high_id = by_source[low.read_text()], by_source[high.read_text()]
    assert store.programs[(low_id, "stage1")].fitness < 0.5
    assert (low_id, "stage2") not in store.programs  # below the threshold: stops at stage 1
    assert store.programs[(high_id, "stage1")].fitness >= 0.5
    top = store.programs[(high_id, "stage2")]
    assert top.ok  # above it: evaluated at stage 2, by evaluate_stage2
    # each stage's metrics are kept under its fidelity: evaluate_stage1 scores one bowl
    assert store.programs[(high_id, "stage1")].metrics_mean()["bowls"] == 1
    assert top.metrics_mean()["bowls"] == 3 and "worst" in top.metrics_mean()
    seed_id = store.meta["seed_id"]
    for p in store.programs.values():  # OpenEvolve's rule, for every child the search made
        if p.fidelity == "stage1" and p.ok and p.id != seed_id:
            assert ((p.id, "stage2") in store.programs) == (p.fitness >= 0.5), p.id
    assert "keys evo does not use: checkpoint_interval, log_level," in err
    assert (
        "database.num_islands" in err
        and "database.num_islands" in (run_dir / "evo.log").read_text()
    )
    assert _digest(CASCADE) == before  # the folder and its config.yaml are left as they were
    # The report analyses the search's level and also states the best at the highest one.
    from analysis.report import build_report, render_report
    from analysis.rundata import load_run

    report = render_report(build_report(load_run(run_dir)))
    assert "at `stage2`, the highest level reached" in report


def test_artifacts_fixture_keeps_artifacts_and_evo_best_prints_them(tmp_path, capsys):
    before = _digest(ARTIFACTS)
    run_dir = tmp_path / "run"
    rc, _, err = _run(capsys, str(ARTIFACTS), "--run-dir", str(run_dir), "--no-llm")
    assert rc == 0, err
    cfg = _resolved(run_dir)
    assert cfg["run"]["evaluations"] == 8 and cfg["run"]["seed"] == 42
    assert cfg["cascade"]["levels"] == []  # cascade_evaluation: false
    assert (
        cfg["llm"]["format"] == "whole_file" and cfg["llm"]["api_key_env"] == "OPENROUTER_API_KEY"
    )
    assert "evaluator.cascade_thresholds (cascade_evaluation is false)" in err

    store = evo.open_run(run_dir)
    ok = [p for p in store.programs.values() if p.ok]
    assert len(ok) >= 2
    for p in ok:  # every ok program has the artifacts its evaluation returned
        assert p.artifacts["terms"] == int(p.source.split("TERMS = ")[1].split()[0])
        assert p.artifacts["report"].startswith("estimate ")
    best = store.best(store.meta["fidelity"])

    assert main(["best", str(run_dir), "--artifacts"]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[0] == f"estimate: {best.artifacts['estimate']}"
    assert f"terms: {best.artifacts['terms']}\n" in out
    assert "report: estimate " in out and "\nmath.pi 3.141593\n" in out
    assert main(["best", str(run_dir)]) == 0  # without the flag: the program's bytes only
    assert capsys.readouterr().out == best.source
    assert _digest(ARTIFACTS) == before


def test_plain_fixture_names_unused_keys_and_never_keeps_a_written_key(tmp_path, capsys):
    before = _digest(PLAIN)
    run_dir = tmp_path / "run"
    rc, out, err = _run(capsys, str(PLAIN / "config.yaml"), "--run-dir", str(run_dir), "--no-llm")
    assert rc == 0, err
    (line,) = [ln for ln in err.splitlines() if "keys evo does not use" in ln]
    for key in ("log_level", "allow_full_rewrites", "evolution_trace.*", "llm.api_key (a key"):
        assert key in line, key
    assert "language" not in line  # python: what evo runs anyway
    cfg = _resolved(run_dir)
    assert cfg["run"]["target"] == str(PLAIN)
    assert cfg["run"]["evaluations"] == 6 and cfg["run"]["timeout"] == 10.0
    assert cfg["llm"]["api_key_env"] == "OPENAI_API_KEY"  # the default: the file's key is unused
    files = [f for f in run_dir.rglob("*") if f.is_file()]
    for text in (out, err, *(f.read_text(errors="replace") for f in files)):
        assert LITERAL_KEY not in text
    # --print-config: the same resolved TOML, without the key, and nothing run
    assert main(["run", str(PLAIN), "--print-config"]) == 0
    printed, err = capsys.readouterr()
    assert LITERAL_KEY not in printed + err and "llm.api_key" in err
    assert 'base_url = "http://localhost:11434/v1"' in printed
    assert 'models = [{name = "qwen2.5-coder", weight = 1.0' in printed
    assert "temperature = 0.2" in printed
    assert evo.open_run(run_dir).meta["seed_id"]  # a real run happened above
    assert _digest(PLAIN) == before


def test_precedence_defaults_yaml_run_toml_flags(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'[run]\ntarget = "{CASCADE}"\nopenevolve_config = "{CASCADE / "config.yaml"}"\n'
        "evaluations = 30\n[llm]\ntemperature = 0.3\n"
    )
    cfg = load_config(toml, {"run.evaluations": 5})
    assert cfg["run"]["evaluations"] == 5  # flag > run.toml > yaml (14)
    assert cfg["llm"]["temperature"] == 0.3  # run.toml > yaml (0.7)
    assert cfg["llm"]["max_tokens"] == 16000  # yaml > default
    assert cfg["run"]["timeout"] == 20.0 and cfg["cascade"]["thresholds"] == [0.5]
    # a run.toml reads no config.yaml it does not name; the staged evaluator's cascade stays
    toml.write_text(f'[run]\ntarget = "{CASCADE}"\n')
    cfg = load_config(toml)
    assert cfg["run"]["evaluations"] == 16 and cfg["run"]["openevolve_config"] == ""
    assert cfg["cascade"]["thresholds"] == [0.5]  # OpenEvolve's default, one level above
    # --print-config's TOML, run as a run.toml, resolves to the same config
    cfg = load_config(None, {"run.target": str(ARTIFACTS)})
    toml.write_text(to_toml(cfg))
    assert load_config(toml) == cfg


def test_malformed_yaml_is_one_line_error_with_its_line_exit_2(tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(PLAIN, folder)
    text = (folder / "config.yaml").read_text()
    (folder / "config.yaml").write_text(text.replace("  temperature: 0.2", "  temperature: [0.2"))
    r = run_evo("run", str(folder), "--run-dir", str(tmp_path / "run"), timeout=60)
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith(f"evo run: error: {folder / 'config.yaml'}:")
    lineno = text.splitlines().index("  temperature: 0.2") + 1
    # PyYAML notices two lines further down; the line the bracket opened on is named too
    assert f"while parsing a flow sequence that starts on line {lineno})" in line, line
    assert "not valid YAML" in line and not (tmp_path / "run").exists()
    # a value of the wrong type names the YAML key
    (folder / "config.yaml").write_text(text.replace("max_iterations: 6", "max_iterations: six"))
    with pytest.raises(ConfigError, match=r"config.yaml: 'max_iterations' must be an integer"):
        load_config(None, {"run.target": str(folder)})
    # evo's own limits on a mapped value name the YAML key too
    (folder / "config.yaml").write_text(text.replace("temperature: 0.2", "temperature: 7"))
    with pytest.raises(ConfigError, match=r"'llm.temperature' \(evo's llm.temperature\)"):
        load_config(None, {"run.target": str(folder)})


def _staged(tmp_path: Path, stages: tuple[str, ...], yaml: str = "") -> Path:
    folder = tmp_path / "staged"
    folder.mkdir()
    (folder / "initial_program.py").write_text("X = 1.0\n")
    body = "def evaluate(path):\n    return {'combined_score': 1.0}\n"
    for s in stages:
        body += f"\ndef evaluate_{s}(path):\n    return {{'combined_score': 1.0}}\n"
    (folder / "evaluator.py").write_text(body)
    if yaml:
        (folder / "config.yaml").write_text(textwrap.dedent(yaml))
    return folder


@pytest.mark.parametrize(
    "stages, yaml, levels, thresholds, note",
    [
        ((), "", None, None, ""),
        (("stage1", "stage2"), "", ["stage1", "stage2"], [0.5], ""),
        (("stage1", "stage2", "stage3"), "", ["stage1", "stage2", "stage3"], [0.5, 0.75], ""),
        (
            ("stage1", "stage2", "stage3"),
            "evaluator:\n  cascade_thresholds: [0.9]\n",
            ["stage1", "stage2"],
            [0.9],
            "evaluate_stage3 never runs",
        ),
        (("stage1", "stage3"), "", None, None, "evaluate_stage3 never runs without"),
        (("stage1", "stage2"), "evaluator:\n  cascade_evaluation: false\n", None, None, ""),
        (("stage2",), "", None, None, "evaluate_stage2 never runs"),
    ],
)
def test_openevolve_cascade_semantics(tmp_path, stages, yaml, levels, thresholds, note):
    folder = _staged(tmp_path, stages, yaml)
    layer = openevolve_layer(folder, folder / "config.yaml" if yaml else None)
    assert layer.values.get("cascade.levels") == levels
    assert layer.values.get("cascade.thresholds") == thresholds
    assert any(note in n for n in layer.notes) if note else not layer.notes
    assert list(load_target(folder).fidelities) == [*stages, "default"]
    if stages == ("stage1", "stage3"):  # evaluate_stage1 alone scores, as in OpenEvolve
        assert layer.values["run.fidelity"] == "stage1"


def test_cascade_keys_without_stage_functions_are_named_and_empty_thresholds_refused(tmp_path):
    folder = _staged(tmp_path, (), "evaluator:\n  cascade_evaluation: true\n")
    layer = openevolve_layer(folder, folder / "config.yaml")
    assert layer.unused == [
        "evaluator.cascade_evaluation (evaluator.py defines no evaluate_stage1, so "
        "evaluate() is the one stage)"
    ]
    (folder / "evaluator.py").write_text(
        "from helpers import evaluate, evaluate_stage1, evaluate_stage2 as evaluate_stage2\n"
    )
    (folder / "config.yaml").write_text("evaluator:\n  cascade_thresholds: []\n")
    with pytest.raises(ConfigError, match="'evaluator.cascade_thresholds' is empty"):
        openevolve_layer(folder, folder / "config.yaml")
    with pytest.raises(ConfigError, match="one number per level above the first"):
        load_config(
            None,
            {
                "run.target": str(folder / "x"),
                "cascade.levels": ["a", "b"],
                "cascade.promote": "threshold",
            },
        )


def test_threshold_rule_promotes_every_program_at_least_as_good_when_minimizing(tmp_path):
    store = RunStore.create(
        tmp_path / "r", dims=[Dim(name="x", low=0.0, high=1.0, bins=4)], direction="minimize"
    )
    with store:
        for i, fitness in enumerate([1.0, 2.0, 3.0]):  # one cell: only p0 is an elite
            runs = [SeedRun(seed=0, status="ok", metrics={"loss": fitness})]
            store.add(
                Program(
                    id=f"p{i}",
                    source=f"x = {i}\n",
                    fidelity="lo",
                    status="ok",
                    fitness=fitness,
                    descriptors={"x": 0.1 * i},
                    runs=runs,
                )
            )
        table = {"levels": ["lo", "hi"], "promote": "threshold", "thresholds": [2.0]}
        cascade = Cascade({**table, "top_fraction": 0.2, "reserve": []}, ["lo", "hi"], "lo", 2)
        promoted = cascade.promotions(store, "lo", 0.0, 2.0, lambda a, b: a < b)
        assert [p.id for p in promoted] == ["p0", "p1"]  # 2.0 reaches the threshold 2.0
        store.add(Cascade.promoted_record(promoted[0], "hi"))
        assert [p.id for p in cascade.promotions(store, "lo", 0.0, 2.0, lambda a, b: a < b)] == [
            "p1"
        ]


def test_print_config_says_when_the_yaml_endpoint_has_no_key(capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["run", str(CASCADE), "--print-config"]) == 0
    out, err = capsys.readouterr()
    assert "OPENAI_API_KEY is not set" in err and "--no-llm" in err
    assert 'base_url = "https://generativelanguage.googleapis.com/v1beta/openai/"' in out
    assert main(["run", str(CASCADE), "--print-config", "--no-llm"]) == 0
    assert "is not set" not in capsys.readouterr().err
