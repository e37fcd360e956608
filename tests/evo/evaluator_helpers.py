"""Shared by the evaluator tests: a job whose child is a small Python program written inline."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from evo.evaluation.evaluator import EvalJob

REPORT = (
    "import json, os, subprocess, sys, time\n"
    "def report(obj):\n"
    "    with open(os.environ['EVO_RESULT'], 'w') as f:\n"
    "        json.dump(obj, f)\n"
)
"""Prepended to every child: ``report(obj)`` writes the result the protocol asks for."""


def make_job(tmp_path: Path, body: str, name: str = "w", **kw) -> EvalJob:
    """A job running ``body`` (dedented, after :data:`REPORT`) as ``child.py``."""
    kw.setdefault("metric", "score")
    kw.setdefault("timeout", 10.0)
    return EvalJob(
        argv=[sys.executable, "child.py"],
        workdir=tmp_path / name,
        files={"child.py": REPORT + textwrap.dedent(body)},
        **kw,
    )
