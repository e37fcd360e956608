"""Shared by the evaluator tests: a job whose child is a small Python program written inline,
and the sandbox the tests run children in."""

from __future__ import annotations

import functools
import os
import sys
import textwrap
from pathlib import Path

import pytest

from evo.evaluation.evaluator import EvalJob
from evo.evaluation.isolation import Sandbox, resolve_sandbox

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


@functools.cache
def _probe() -> tuple[Sandbox, str | None]:
    return resolve_sandbox("auto")


def sandbox_for_tests(*, required: bool = False) -> Sandbox | None:
    """bubblewrap's sandbox when it works here, else None (a run's ``kind = "auto"``).

    With ``required`` (or ``EVO_REQUIRE_BWRAP=1``, which ``.ci/run`` sets once bubblewrap is
    installed) a missing sandbox fails the test instead: skipped with the reason when only
    ``required`` asked for it and the environment does not insist.
    """
    box, warning = _probe()
    if box.active:
        return box
    if os.environ.get("EVO_REQUIRE_BWRAP") == "1":
        pytest.fail(f"EVO_REQUIRE_BWRAP=1 but {warning}")
    if required:
        pytest.skip(f"bubblewrap is not usable here: {warning}")
    return None
