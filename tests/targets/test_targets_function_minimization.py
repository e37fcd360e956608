"""OpenEvolve-layout evaluators called directly, with a stand-in ``openevolve`` package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from targets_testkit import TARGETS

FOLDER = TARGETS / "function_minimization"
OE_DICT = Path(__file__).resolve().parent / "fixtures/oe_dict"


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def evaluator(tmp_path, monkeypatch):
    """evaluator.py imported with a minimal openevolve package on sys.path."""
    pkg = tmp_path / "stub" / "openevolve"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "evaluation_result.py").write_text(
        "from dataclasses import dataclass, field\n\n\n@dataclass\nclass EvaluationResult:\n"
        "    metrics: dict\n    artifacts: dict = field(default_factory=dict)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "stub"))
    for name in ("openevolve", "openevolve.evaluation_result"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setenv("EVO_SEED", "0")
    yield _import(FOLDER / "evaluator.py", "function_minimization_evaluator")
    for name in ("openevolve", "openevolve.evaluation_result"):
        sys.modules.pop(name, None)


def test_seed_program_scores_between_zero_and_one(evaluator):
    result = evaluator.evaluate(str(FOLDER / "initial_program.py"))
    assert type(result).__name__ == "EvaluationResult"
    m = result.metrics
    assert 0.3 < m["combined_score"] < 1.0
    assert m["mean_value"] >= evaluator.GLOBAL_MIN_VALUE - 1e-6
    assert set(m) >= {"value_score", "distance_score", "reliability", "mean_seconds"}
    assert len(result.artifacts["values"].split(",")) == evaluator.TRIALS
    again = evaluator.evaluate(str(FOLDER / "initial_program.py"))
    assert again.metrics["combined_score"] == m["combined_score"]  # seeded trials


def test_perfect_answer_scores_near_one(evaluator, tmp_path):
    source = (FOLDER / "initial_program.py").read_text()
    start, end = source.index("# EVOLVE-BLOCK-START"), source.index("# EVOLVE-BLOCK-END")
    block = (
        "# EVOLVE-BLOCK-START\ndef search_algorithm():\n"
        f"    x, y = {evaluator.GLOBAL_MIN_X}, {evaluator.GLOBAL_MIN_Y}\n"
        "    return x, y, objective(x, y)\n\n\n"
    )
    path = tmp_path / "best.py"
    path.write_text(source[:start] + block + source[end:])
    assert evaluator.evaluate(str(path)).metrics["combined_score"] > 0.999


def test_claimed_value_is_checked(evaluator, tmp_path):
    source = (FOLDER / "initial_program.py").read_text()
    path = tmp_path / "liar.py"
    path.write_text(
        source.replace(
            "return search_algorithm()", "x, y, _ = search_algorithm()\n    return x, y, -5.0"
        )
    )
    result = evaluator.evaluate(str(path))
    assert result.metrics["combined_score"] == 0.0
    assert "reported value" in result.artifacts["error"]


def test_raising_program_scores_zero_with_its_traceback(evaluator, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def run_search():\n    raise ValueError('nope')\n")
    result = evaluator.evaluate(str(path))
    assert result.metrics["combined_score"] == 0.0
    assert "nope" in result.artifacts["details"]


def test_plain_dict_evaluator_fixture():
    evaluate = _import(OE_DICT / "evaluator.py", "oe_dict_evaluator").evaluate
    assert evaluate(str(OE_DICT / "initial_program.py")) == {"combined_score": 1 / 3, "value": 40.0}
