"""Run an OpenEvolve-style ``evaluate(program_path)`` on one program and write evo's result.

Trusted and standalone: the evaluator copies this file, read-only, beside the child in its
working dir, so it imports nothing from evo and runs under any Python >= 3.10.

Usage::

    python openevolve_runner.py evaluator.py initial_program.py

``evaluate()`` may return a dict or an ``EvaluationResult`` (anything with ``.metrics`` and
optionally ``.artifacts``). Numbers become metrics; strings, artifacts and other values are
kept beside them and end up in the evaluation's ``info``. When ``openevolve`` is not
installed, a small stand-in ``openevolve.evaluation_result.EvaluationResult`` is installed
first, so evaluators that import it run unchanged. An exception in ``evaluate()`` prints its
traceback and exits 1.

Staged evaluators (OpenEvolve's cascade): when ``EVO_FIDELITY`` is ``stageN`` the runner calls
``evaluate_stageN(program_path)`` instead of ``evaluate``. A stage's result without a numeric
``combined_score`` gets the score OpenEvolve compares with the stage's threshold: the mean of
its numeric metrics other than ``error`` (booleans count as 0 and 1), and
``combined_score_from`` says so.

The result goes through evo's result channel (``evo/evaluation/channel.py``): before the
evaluator is imported, the channel's variables are removed from the environment and its token
is read, so neither the evaluator nor the program it loads is handed them; the result is
written once, after ``evaluate()`` returns, and the process exits at once (``os._exit``), so
no ``atexit`` hook or thread the program left behind runs after it. Run by hand (no channel),
the JSON goes to ``$EVO_RESULT`` when set, else to stdout.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import numbers
import os
import re
import sys
import traceback
import types
from pathlib import Path
from typing import Any

_TEXT_LIMIT = 10_000  # characters kept of one non-numeric value (artifacts can be huge)

# Bound before any target code runs: a program that replaces json.dumps or os.write later
# does not change what the runner writes with.
_dumps = json.dumps
_write_fd = os.write
_exit = os._exit


@dataclasses.dataclass
class EvaluationResult:
    """Stand-in for ``openevolve.evaluation_result.EvaluationResult`` (same fields/methods)."""

    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, metrics: dict[str, Any]) -> EvaluationResult:
        return cls(metrics=dict(metrics))

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": dict(self.metrics), "artifacts": dict(self.artifacts)}

    def has_artifacts(self) -> bool:
        return bool(self.artifacts)

    def get_artifact_keys(self) -> list[str]:
        return list(self.artifacts)


def install_shim() -> bool:
    """Make ``openevolve.evaluation_result`` importable; True when the stand-in was installed."""
    try:
        import openevolve.evaluation_result  # noqa: F401

        return False
    except ImportError:
        pass
    package = types.ModuleType("openevolve")
    package.__path__ = []  # a package, so submodule imports resolve through sys.modules
    module = types.ModuleType("openevolve.evaluation_result")
    EvaluationResult.__module__ = module.__name__
    module.EvaluationResult = EvaluationResult  # type: ignore[attr-defined]
    package.evaluation_result = module  # type: ignore[attr-defined]
    sys.modules["openevolve"] = package
    sys.modules["openevolve.evaluation_result"] = module
    return True


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value[:_TEXT_LIMIT] if isinstance(value, str) else value
    if isinstance(value, bytes):
        return value[:_TEXT_LIMIT].decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value[:1000]]
    return str(value)[:_TEXT_LIMIT]


def to_result(raw: Any) -> dict[str, Any]:
    """evo's result object from what ``evaluate()`` returned.

    Raises:
        TypeError: ``raw`` is neither a dict nor has ``.metrics``.
    """
    if isinstance(raw, dict):
        values, artifacts = dict(raw), {}
    elif hasattr(raw, "metrics"):
        values = dict(raw.metrics or {})
        artifacts = dict(getattr(raw, "artifacts", None) or {})
    else:
        raise TypeError(
            f"evaluate() returned {type(raw).__name__}; expected a dict of metrics "
            "or an EvaluationResult"
        )
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[str(key)] = float(value)  # numpy scalars too; NaN stays NaN for evo to classify
        else:
            out[str(key)] = _jsonable(value)
    if artifacts:
        out["artifacts"] = _jsonable(artifacts)
    return out


def stage_function(fidelity: str) -> str:
    """The evaluator function a fidelity calls: ``evaluate_stageN`` for ``stageN``, else
    ``evaluate``."""
    return f"evaluate_{fidelity}" if re.fullmatch(r"stage[0-9]+", fidelity) else "evaluate"


def with_stage_score(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with OpenEvolve's stage score as ``combined_score`` when it has none: the
    mean of the numeric values other than ``error`` (what OpenEvolve's cascade compares with
    a threshold); unchanged when it has a numeric ``combined_score`` or no numbers at all."""
    score = result.get("combined_score")
    if isinstance(score, numbers.Real) and not isinstance(score, bool):
        return result
    values = [
        float(v)
        for k, v in result.items()
        if k != "error" and isinstance(v, numbers.Real) and k != "combined_score"
    ]
    if not values:
        return result
    return {
        **result,
        "combined_score": sum(values) / len(values),
        "combined_score_from": "the mean of the stage's numeric metrics (it gave no combined_score)",
    }


def take_channel() -> tuple[int, str] | None:
    """The result descriptor and token, removed from the environment; None when run by hand.

    Call before any target code runs: afterwards neither the variables nor the token's
    descriptor exist in this process, and the result descriptor is close-on-exec, so a
    program the evaluator runs in a subprocess does not inherit it.
    """
    fd_text = os.environ.pop("EVO_RESULT_FD", None)
    token_text = os.environ.pop("EVO_TOKEN_FD", None)
    if fd_text is None or token_text is None:
        return None
    os.environ.pop("EVO_RESULT", None)
    token_fd, result_fd = int(token_text), int(fd_text)
    chunks = []
    while chunk := os.read(token_fd, 256):
        chunks.append(chunk)
    os.close(token_fd)
    os.set_inheritable(result_fd, False)
    return result_fd, b"".join(chunks).decode().strip()


def _send(channel: tuple[int, str] | None, result: dict[str, Any]) -> None:
    if channel is None:
        _write_by_hand(result)
        return
    fd, token = channel
    data = (_dumps({"token": token, "result": result}) + "\n").encode()
    while data:
        data = data[_write_fd(fd, data) :]


def _write_by_hand(result: dict[str, Any]) -> None:
    text = json.dumps(result)
    path = os.environ.get("EVO_RESULT")
    if not path:
        print(text)
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)  # never a half-written result


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python openevolve_runner.py evaluator.py program.py", file=sys.stderr)
        return 2
    channel = take_channel()
    evaluator_path, program_path = Path(argv[1]).resolve(), Path(argv[2]).resolve()
    install_shim()
    sys.path.insert(0, str(evaluator_path.parent))  # the evaluator may import its siblings
    try:
        spec = importlib.util.spec_from_file_location("evaluator", evaluator_path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {evaluator_path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules["evaluator"] = module
        spec.loader.exec_module(module)
        fidelity = os.environ.get("EVO_FIDELITY", "")
        name = stage_function(fidelity)
        evaluate = getattr(module, name, None)
        if not callable(evaluate):
            at = f" (fidelity {fidelity!r})" if name != "evaluate" else ""
            raise AttributeError(f"{evaluator_path.name} defines no {name}(program_path){at}")
        result = to_result(evaluate(str(program_path)))
        if name != "evaluate":
            result = with_stage_score(result)
    except Exception:
        traceback.print_exc()
        return 1
    _send(channel, result)
    return 0


def _flush_and_exit(code: int) -> None:
    """Exit now: no atexit hook, no non-daemon thread and no finaliser runs after the result."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a program may have replaced or closed the stream
            pass
    _exit(code)


if __name__ == "__main__":
    try:
        _code = main(sys.argv)
    except SystemExit as e:  # the evaluator or the program called sys.exit() mid-evaluation
        _code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - KeyboardInterrupt and friends: report, exit 1
        traceback.print_exc()
        _code = 1
    _flush_and_exit(_code)
