"""notebooks/explore_run.ipynb runs top to bottom on a real run and draws every plot."""

from __future__ import annotations

import os

import nbformat
from analysis_helpers import REPO
from nbclient import NotebookClient

import analysis


def test_notebook_executes_and_draws_the_key_plots(cp_run, monkeypatch):
    monkeypatch.setenv("EVO_RUN_DIR", str(cp_run.run_dir))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(REPO / "notebooks" / "explore_run.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == len(analysis.PLOTS)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    best = analysis.load_run(cp_run.run_dir).best
    assert f"{best.fitness:.6g} ({best.id[:12]})" in text
    markdown = [o for o in outputs if "text/markdown" in o.get("data", {})]
    assert "## Hit rate" in markdown[0]["data"]["text/markdown"]
