"""Classify a finished child: its exit, its result file and its stderr -> status and metrics.

Precedence, first match wins: killed over the memory limit (``oom``); past the timeout
(``timeout``); a harness file changed or deleted (``invalid_result``); out-of-memory in
stderr (``oom``; a SIGKILL alone is ``crash`` with the signal named, since without evo's
memory limit nothing says it was memory); the result says ``"status": "nan"`` or ``"invalid_result"`` (that status); a
non-zero exit (``crash``, the traceback's last line as reason, or the signal's name); then the
result itself: missing, not JSON, not an object, the metric missing or not a number
(``invalid_result``), an error message beside the score (``crash``, reason ``evaluator
error: MESSAGE``), the metric not finite (``nan``), else ``ok``.

An error message is a non-empty string under one of :data:`ERROR_KEYS`, in the result or in
its ``artifacts``: the spelling OpenEvolve-style evaluators use when they catch an exception
and return ``{"combined_score": 0.0, "error": "No module named 'jax'"}``. Such a score is a
consolation prize, not a measurement; treating it as one let a missing dependency look like a
search that found nothing. A number under those keys (a mean squared "error") is a metric.
"""

from __future__ import annotations

import json
import math
import re
import signal
from pathlib import Path
from typing import Any

from evo.evaluation.sandbox import read_regular_file, signal_name

ERROR_KEYS = ("error", "error_message", "exception", "failure_reason")
"""Keys whose non-empty string value means the evaluator failed (see the module docstring)."""

RESULT_LIMIT = 8 << 20
"""Largest result file read; a bigger one is ``invalid_result``."""

OOM_MARKERS = (
    "MemoryError",
    "CUDA out of memory",
    "OutOfMemoryError",
    "std::bad_alloc",
    "Cannot allocate memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
)

_EXC_LINE = re.compile(
    r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Iteration|Warning)"
    r"(: .*)?$|^[A-Za-z_][\w.]*: .*$"
)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` squeezed onto one line of at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def last_error_line(stderr: str) -> str:
    """The exception line of the last traceback in ``stderr``, else its last non-empty line."""
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip()]
    tb = [i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call last)")]
    if tb:
        after = [ln for ln in lines[tb[-1] + 1 :] if not ln[:1].isspace()]
        matches = [ln for ln in after if _EXC_LINE.match(ln)]
        if matches or after:
            return (matches or after)[-1]
    return lines[-1] if lines else ""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _to_float(v: int | float) -> float:
    try:
        return float(v)
    except OverflowError:  # a JSON integer beyond float range
        return math.inf if v > 0 else -math.inf


def read_result(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The result object, or None and a one-line reason it is unusable."""
    try:
        data = read_regular_file(path, RESULT_LIMIT)
    except ValueError as e:
        return None, f"result file is too large ({e})"
    if data is None:
        return None, "no result written to $EVO_RESULT"
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return None, one_line(f"result is not valid JSON: {e}")
    except RecursionError:
        return None, "result is not valid JSON: nested too deeply"
    if not isinstance(obj, dict):
        return None, f"result is a JSON {type(obj).__name__}, not an object"
    return obj, ""


def evaluator_error(obj: dict[str, Any]) -> str:
    """The error message an evaluator reported beside its score, or ``""`` (one line)."""
    artifacts = obj.get("artifacts")
    for where in (obj, artifacts if isinstance(artifacts, dict) else {}):
        for key in ERROR_KEYS:
            value = where.get(key)
            if isinstance(value, str) and value.strip():
                return one_line(value)
    return ""


ARTIFACT_LIMIT = 16 << 10
"""Bytes of JSON kept of one program's artifacts (in the store, the report and prompts)."""


def cap_artifacts(artifacts: Any, limit: int = ARTIFACT_LIMIT) -> dict[str, Any]:
    """``artifacts`` as a JSON object of at most ``limit`` bytes: long strings are cut (head
    and tail kept), then the largest values are dropped and named under ``"_dropped"``."""
    if not isinstance(artifacts, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in artifacts.items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            value = json.dumps(value, default=str)
        if isinstance(value, str) and len(value) > 2000:
            value = f"{value[:1000]}\n[... {len(value) - 2000} characters cut ...]\n{value[-1000:]}"
        out[str(key)] = value
    dropped = []
    while out and len(json.dumps(out)) > limit:
        biggest = max(out, key=lambda k: len(json.dumps(out[k])))
        dropped.append(biggest)
        del out[biggest]
    if dropped:
        out["_dropped"] = (
            f"{len(dropped)} artifacts over the {limit}-byte cap: {', '.join(dropped)}"
        )
    return out


def split_result(obj: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Finite numbers -> metrics; everything else (strings, lists, NaN extras) -> info."""
    metrics: dict[str, float] = {}
    info: dict[str, Any] = {}
    for k, v in obj.items():
        k = str(k)
        if _is_number(v) and math.isfinite(_to_float(v)):
            metrics[k] = _to_float(v)
        elif _is_number(v):
            info[k] = repr(_to_float(v))  # "nan", "inf": keeps info valid JSON
        else:
            info[k] = v
    return metrics, info


def classify(
    *,
    metric: str,
    returncode: int | None,
    killed_for: str | None,
    timeout: float,
    memory_mb: int | None,
    peak_rss: int,
    tampered: str | None,
    result_path: Path,
    stderr_tail: str,
    channel: tuple[dict[str, Any] | None, str] | None = None,
) -> tuple[str, dict[str, float], dict[str, Any], str]:
    """Status, metrics, info and reason of one finished run (see the module docstring).

    ``channel`` is what the result channel carried (:meth:`ResultChannel.result`) for a target
    whose harness reports through it; then ``result_path`` is not read at all.
    """
    peak_mb = peak_rss / (1 << 20)
    if killed_for == "memory":
        return "oom", {}, {}, f"killed: memory limit {memory_mb} MB (used {peak_mb:.0f} MB)"
    if killed_for == "timeout":
        return "timeout", {}, {}, f"timeout after {timeout:g} s"
    if tampered:
        return "invalid_result", {}, {}, f"harness file {tampered!r} was modified or deleted"
    failed = returncode != 0
    obj, why = read_result(result_path) if channel is None else channel
    if (failed or obj is None) and any(m in stderr_tail for m in OOM_MARKERS):
        return "oom", {}, {}, one_line(last_error_line(stderr_tail) or "out of memory")
    metrics, info = split_result(obj) if obj is not None else ({}, {})
    declared = info.get("status")
    if declared in ("nan", "invalid_result"):
        detail = info.get("reason") or info.get("error") or f"the program reported {declared}"
        return str(declared), metrics, info, one_line(str(detail))
    if failed:
        if returncode == -signal.SIGKILL:
            reason = "killed by SIGKILL (sent from outside the program: another process, or the kernel's OOM killer)"
        elif returncode is not None and returncode < 0:
            reason = f"killed by {signal_name(returncode)}"
        else:
            reason = last_error_line(stderr_tail) or f"exited with status {returncode}"
        return "crash", metrics, info, one_line(reason)
    if obj is None:
        return "invalid_result", {}, {}, why
    error = evaluator_error(obj)
    if error:
        return "crash", metrics, info, f"evaluator error: {error}"
    if metric not in obj:
        return "invalid_result", metrics, info, f"metric {metric!r} missing from result"
    value = obj[metric]
    if not _is_number(value):
        return (
            "invalid_result",
            metrics,
            info,
            one_line(f"metric {metric!r} is not a number: {value!r}"),
        )
    if not math.isfinite(_to_float(value)):
        return "nan", metrics, info, f"metric {metric!r} is {_to_float(value)!r}"
    return "ok", metrics, info, ""
