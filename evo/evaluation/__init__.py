"""Running one child program: the evaluation side of a run, as one sub-package.

The loop calls one entry point: it builds an :class:`EvalCall` (plain, picklable data) per
evaluation and submits it to the backend :func:`make_backend` returned; the backend runs it on
a slot (a local thread, or a Ray task on any node) and hands back a Future of an
:class:`EvalResult`. Everything a child can do happens inside that call, which never raises
on anything the child does.

Modules, one job each:

* ``evaluator`` — the lifecycle of one run (working dir, start, supervise, kill, classify);
* ``isolation`` — the bubblewrap sandbox: what the child may see, write and reach;
* ``sandbox`` — containment of the child's environment, process tree and output;
* ``channel`` — the result channel a trusted harness reports through;
* ``outcome`` — the finished run's exit, result and stderr -> status and metrics;
* ``slots`` / ``backends`` / ``ray_backend`` / ``ray_connect`` — where evaluations run;
* ``openevolve_runner`` — the trusted, standalone runner for OpenEvolve-layout folders.
"""

from __future__ import annotations

from evo.evaluation.backends import BACKENDS, BackendError, make_backend
from evo.evaluation.evaluator import (
    EvalCall,
    EvalJob,
    EvalResult,
    EvaluatorError,
    evaluate_program,
    prune_workdir,
    remove_workdir,
    run_job,
)
from evo.evaluation.isolation import KINDS as SANDBOX_KINDS
from evo.evaluation.isolation import Sandbox, SandboxError, resolve_sandbox
from evo.evaluation.outcome import cap_artifacts
from evo.evaluation.sandbox import kill_marked

__all__ = [
    "BACKENDS",
    "BackendError",
    "EvalCall",
    "EvalJob",
    "EvalResult",
    "EvaluatorError",
    "SANDBOX_KINDS",
    "Sandbox",
    "SandboxError",
    "cap_artifacts",
    "evaluate_program",
    "kill_marked",
    "make_backend",
    "prune_workdir",
    "remove_workdir",
    "resolve_sandbox",
    "run_job",
]
