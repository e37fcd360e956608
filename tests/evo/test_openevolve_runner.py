"""OpenEvolve-layout folders evaluated end to end: load_target -> evaluate_program -> runner."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evo.evaluation import openevolve_runner
from evo.evaluation.evaluator import evaluate_program
from evo.target import OPENEVOLVE_RUNNER, load_target
from tests.evo.evaluator_helpers import sandbox_for_tests

BOX = sandbox_for_tests()  # the runner runs inside bubblewrap, as in a run, when it works here

PROGRAM = textwrap.dedent("""
    # EVOLVE-BLOCK-START
    def solve():
        return [1.0, 2.0, 3.0]
    # EVOLVE-BLOCK-END
""")

EVALUATOR_WITH_RESULT_CLASS = textwrap.dedent("""
    import importlib.util
    from openevolve.evaluation_result import EvaluationResult
    import helper  # a sibling module of the evaluator

    def evaluate(program_path):
        spec = importlib.util.spec_from_file_location("program", program_path)
        program = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(program)
        values = program.solve()
        return EvaluationResult(
            metrics={"combined_score": helper.score(values), "count": len(values),
                     "shim": EvaluationResult.__module__},
            artifacts={"stdout": "solved", "values": values})
""")

HELPER = "def score(values):\n    return sum(values) / 10\n"


def make_folder(tmp_path: Path, evaluator: str, program: str = PROGRAM) -> Path:
    root = tmp_path / "problem"
    root.mkdir()
    (root / "initial_program.py").write_text(program)
    (root / "evaluator.py").write_text(textwrap.dedent(evaluator))
    (root / "helper.py").write_text(HELPER)
    return root


def test_evaluation_result_class_works_without_openevolve_installed(tmp_path):
    target = load_target(make_folder(tmp_path, EVALUATOR_WITH_RESULT_CLASS))
    assert target.block and target.metric == "combined_score"
    r = evaluate_program(
        target, target.seed_source(), workdir=tmp_path / "c1", timeout=30, sandbox=BOX
    )
    assert r.status == "ok", r.reason + r.stderr_tail
    assert r.metrics == {"combined_score": 0.6, "count": 3.0}
    assert r.info["shim"] == "openevolve.evaluation_result"
    assert r.info["artifacts"] == {"stdout": "solved", "values": [1.0, 2.0, 3.0]}
    assert (tmp_path / "c1" / OPENEVOLVE_RUNNER.name).is_file()


@pytest.mark.parametrize(
    "returned, status, reason",
    [
        ("{'combined_score': 0.75, 'error': ''}", "ok", ""),
        ("{'score': 1.0}", "invalid_result", "metric 'combined_score' missing from result"),
        ("{'combined_score': float('nan')}", "nan", "metric 'combined_score' is nan"),
        (
            "{'combined_score': 'great'}",
            "invalid_result",
            "metric 'combined_score' is not a number",
        ),
        ("[0.5]", "crash", "TypeError: evaluate() returned list"),
    ],
)
def test_plain_dict_evaluator(tmp_path, returned, status, reason):
    evaluator = f"def evaluate(program_path):\n    return {returned}\n"
    target = load_target(make_folder(tmp_path, evaluator))
    r = evaluate_program(
        target, PROGRAM.replace("3.0", "4.0"), workdir=tmp_path / "c", timeout=30, sandbox=BOX
    )
    assert r.status == status, r.reason + r.stderr_tail
    assert r.reason.startswith(reason)
    if status == "ok":
        assert r.metrics == {"combined_score": 0.75} and r.info["error"] == ""


def test_evaluator_exception_is_a_crash_with_its_traceback(tmp_path):
    evaluator = """
        def evaluate(program_path):
            with open(program_path) as f:
                if "solve" in f.read():
                    raise RuntimeError("program failed validation: circles overlap")
    """
    target = load_target(make_folder(tmp_path, evaluator))
    r = evaluate_program(target, PROGRAM, workdir=tmp_path / "c", timeout=30, sandbox=BOX)
    assert r.status == "crash"
    assert r.reason == "RuntimeError: program failed validation: circles overlap"
    assert "Traceback" in r.stderr_tail and r.returncode == 1


def test_evaluator_receives_the_absolute_program_path(tmp_path):
    evaluator = """
        import os
        def evaluate(program_path):
            return {"combined_score": 1.0, "path": program_path,
                    "absolute": float(os.path.isabs(program_path))}
    """
    target = load_target(make_folder(tmp_path, evaluator))
    r = evaluate_program(target, PROGRAM, workdir=tmp_path / "c", timeout=30, sandbox=BOX)
    assert r.status == "ok" and r.metrics["absolute"] == 1.0
    assert r.info["path"] == str((tmp_path / "c" / "initial_program.py").resolve())


def test_to_result_keeps_numbers_and_moves_the_rest():
    class Duck:
        metrics = {"combined_score": 2, "flag": True, "name": "x", "nested": {"a": (1, 2)}}
        artifacts = {"log": b"bytes here"}

    out = openevolve_runner.to_result(Duck())
    assert out == {
        "combined_score": 2.0,
        "flag": True,
        "name": "x",
        "nested": {"a": [1, 2]},
        "artifacts": {"log": "bytes here"},
    }
    with pytest.raises(TypeError, match="expected a dict of metrics"):
        openevolve_runner.to_result(None)


def test_runner_without_evo_result_prints_json_and_checks_usage(tmp_path):
    root = make_folder(tmp_path, "def evaluate(p):\n    return {'combined_score': 3}\n")
    run = subprocess.run(
        [sys.executable, str(OPENEVOLVE_RUNNER), "evaluator.py", "initial_program.py"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"combined_score": 3.0}
    usage = subprocess.run(
        [sys.executable, str(OPENEVOLVE_RUNNER)], capture_output=True, text=True, timeout=30
    )
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_runner_calls_the_stage_of_evo_fidelity_and_scores_it_as_openevolve(tmp_path):
    folder = tmp_path / "oe"
    folder.mkdir()
    (folder / "initial_program.py").write_text("VALUE = 3\n")
    (folder / "evaluator.py").write_text(
        "def evaluate(path):\n    return {'combined_score': 0.25}\n\n"
        "def evaluate_stage1(path):\n"
        "    return {'runs_successfully': True, 'composite_score': 0.5, 'error': 9.0}\n"
    )
    target = load_target(folder)
    r = evaluate_program(
        target, target.seed_source(), workdir=tmp_path / "s1", fidelity="stage1", sandbox=BOX
    )
    assert r.status == "ok", r.reason + r.stderr_tail
    assert r.metrics["combined_score"] == 0.75  # mean of True and 0.5; 'error' left out
    assert "combined_score_from" in r.info
    r = evaluate_program(
        target, target.seed_source(), workdir=tmp_path / "d", fidelity="default", sandbox=BOX
    )
    assert r.status == "ok" and r.metrics == {"combined_score": 0.25}
