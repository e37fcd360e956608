"""run_job and evaluate_program on real child programs: results, failures, environment."""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest

from evo.evaluation.evaluator import (
    EvalJob,
    EvaluatorError,
    evaluate_program,
    remove_workdir,
    run_job,
)
from evo.evaluation.sandbox import is_secret_name
from evo.evaluation.slots import Slot
from evo.target import TargetError, load_target
from tests.evo.evaluator_helpers import make_job


def test_ok_run_reports_metrics_info_and_protocol_env(tmp_path):
    job = make_job(
        tmp_path,
        """
        print("hello from the child")
        report({"score": 2.5, "steps": 7, "note": "fine", "extra_nan": float("nan"),
                "seed": int(os.environ["EVO_SEED"]), "fid": os.environ["EVO_FIDELITY"],
                "threads": os.environ["OMP_NUM_THREADS"], "evo_threads": os.environ["EVO_THREADS"],
                "cuda": os.environ["CUDA_VISIBLE_DEVICES"], "home": os.environ["HOME"],
                "tmp": os.environ["TMPDIR"], "cwd": os.getcwd()})
    """,
        seed=42,
        fidelity="tiny",
    )
    r = run_job(job, Slot(index=1, gpu=None, threads=3))
    assert r.status == "ok", r.reason
    assert r.metrics == {"score": 2.5, "steps": 7.0, "seed": 42.0}
    assert r.info["note"] == "fine" and r.info["extra_nan"] == "nan"
    assert r.info["fid"] == "tiny"
    assert r.info["threads"] == "3" and r.info["evo_threads"] == "3"
    assert r.info["cuda"] == ""  # a CPU slot hides every GPU
    workdir = (tmp_path / "w").resolve()
    assert r.info["home"] == r.info["cwd"] == str(workdir)
    assert r.info["tmp"] == str(workdir / "tmp")
    assert r.returncode == 0 and r.reason == ""
    assert r.stdout_tail == "hello from the child"
    assert (workdir / "stdout.log").read_text() == "hello from the child\n"
    assert 0 < r.wall_time < 10
    json.dumps(r.to_dict())  # the record is JSON-serialisable for the journal


def test_gpu_slot_exports_its_device(tmp_path):
    job = make_job(tmp_path, "report({'score': 1, 'cuda': os.environ['CUDA_VISIBLE_DEVICES']})")
    assert run_job(job, Slot(index=0, gpu=3, threads=1)).info["cuda"] == "3"


def test_crash_keeps_the_last_traceback_line(tmp_path):
    r = run_job(
        make_job(
            tmp_path,
            """
        def inner():
            raise ZeroDivisionError("division by zero in the loss")
        print("about to fail")
        inner()
    """,
        )
    )
    assert r.status == "crash"
    assert r.reason == "ZeroDivisionError: division by zero in the loss"
    assert "Traceback (most recent call last)" in r.stderr_tail
    assert r.returncode == 1 and r.stdout_tail == "about to fail"


def test_crash_with_a_result_is_still_a_crash(tmp_path):
    r = run_job(make_job(tmp_path, "report({'score': 1.0})\nraise SystemExit(3)"))
    assert r.status == "crash" and r.reason == "exited with status 3"


def test_crash_by_signal_names_the_signal(tmp_path):
    r = run_job(make_job(tmp_path, "import signal\nos.kill(os.getpid(), signal.SIGSEGV)"))
    assert r.status == "crash" and r.reason == "killed by SIGSEGV" and r.returncode == -11


def test_memory_error_in_stderr_is_oom(tmp_path):
    r = run_job(make_job(tmp_path, "raise MemoryError('could not allocate the batch')"))
    assert r.status == "oom" and "MemoryError" in r.reason


@pytest.mark.parametrize(
    "body, status, reason",
    [
        ("report({'score': float('nan')})", "nan", "metric 'score' is nan"),
        ("report({'score': float('-inf')})", "nan", "metric 'score' is -inf"),
        (
            "report({'score': 1.0, 'status': 'nan', 'reason': 'loss diverged at step 3'})",
            "nan",
            "loss diverged at step 3",
        ),
        (
            "report({'status': 'invalid_result', 'reason': 'model sees the future'})",
            "invalid_result",
            "model sees the future",
        ),
        ("pass", "invalid_result", "no result written to $EVO_RESULT"),
        (
            "open(os.environ['EVO_RESULT'], 'w').write('{\"score\": 1.0,')",
            "invalid_result",
            "result is not valid JSON",
        ),
        (
            "open(os.environ['EVO_RESULT'], 'w').write('[1, 2]')",
            "invalid_result",
            "result is a JSON list, not an object",
        ),
        ("report({'loss': 1.0})", "invalid_result", "metric 'score' missing from result"),
        ("report({'score': 'high'})", "invalid_result", "metric 'score' is not a number: 'high'"),
        ("report({'score': True})", "invalid_result", "metric 'score' is not a number: True"),
        ("os.mkfifo(os.environ['EVO_RESULT'])", "invalid_result", "no result written"),
    ],
)
def test_result_classification(tmp_path, body, status, reason):
    r = run_job(make_job(tmp_path, body))
    assert r.status == status
    assert r.reason.startswith(reason), r.reason


def test_harness_is_read_only_and_tampering_is_invalid(tmp_path):
    harness = tmp_path / "harness.py"
    harness.write_text("SECRET_SCORE = 1.0\n")
    r = run_job(
        make_job(
            tmp_path,
            """
        import stat
        mode = stat.S_IMODE(os.stat("harness.py").st_mode)
        try:
            open("harness.py", "a").write("x")
            refused = False
        except PermissionError:
            refused = True
        os.chmod("harness.py", 0o644)
        with open("harness.py", "w") as f:
            f.write("SECRET_SCORE = 1e9\\n")
        report({"score": 1e9, "mode": mode, "refused": refused})
    """,
            harness=[harness],
        )
    )
    assert r.status == "invalid_result"
    assert r.reason == "harness file 'harness.py' was modified or deleted"
    result = json.loads((tmp_path / "w" / "result.json").read_text())
    assert result["mode"] == 0o444
    assert result["refused"] is (
        os.geteuid() != 0
    )  # root ignores file modes; the checksum does not
    assert harness.read_text() == "SECRET_SCORE = 1.0\n"  # the original is untouched


def test_deleted_harness_is_invalid_and_intact_harness_is_ok(tmp_path):
    harness = tmp_path / "harness.py"
    harness.write_text("VALUE = 3.0\n")
    r = run_job(
        make_job(tmp_path, "os.remove('harness.py')\nreport({'score': 1})", harness=[harness])
    )
    assert r.status == "invalid_result" and "harness.py" in r.reason
    r = run_job(
        make_job(
            tmp_path,
            "import harness\nreport({'score': harness.VALUE})",
            name="w2",
            harness=[harness],
        )
    )
    assert r.status == "ok" and r.metrics["score"] == 3.0


def test_environment_holds_no_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-never-leak")
    monkeypatch.setenv("HF_TOKEN", "hf_should_never_leak")
    monkeypatch.setenv("PYTHONPATH", "/should/not/leak")
    monkeypatch.setenv("SOME_UNLISTED_VAR", "unlisted")
    r = run_job(
        make_job(
            tmp_path,
            """
        raw = open("/proc/self/environ", "rb").read().decode()
        report({"score": 1, "env": dict(os.environ), "raw": raw})
    """,
            env={
                "TINYGPT_DATA": "/data/corpus",
                "MY_AUTH_SECRET": "leak-me-not",
                "EVO_SEED": "999",
                "TINYGPT_BUDGET_TOKENS": "20000",
                "HF_TOKENS": "hf_should_never_leak",
                "COPY": "sk-test-should-never-leak",
            },
        )
    )
    assert r.status == "ok"
    env, raw = r.info["env"], r.info["raw"]
    for word in ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH"):
        assert not [k for k in env if word in k.upper() and k != "TINYGPT_BUDGET_TOKENS"]
    for leaked in (
        "sk-test-should-never-leak",
        "hf_should_never_leak",
        "leak-me-not",
        "/should/not/leak",
        "unlisted",
    ):
        assert leaked not in raw and leaked not in json.dumps(env)
    assert "PYTHONPATH" not in env
    assert env["TINYGPT_DATA"] == "/data/corpus"  # passed through on purpose
    assert env["TINYGPT_BUDGET_TOKENS"] == "20000"  # a count of tokens is not a credential
    assert env["EVO_SEED"] == "0"  # the protocol variables cannot be overridden
    # A secret's value under an innocent name is caught by value.
    assert r.info["dropped_env"] == ["COPY", "HF_TOKENS", "MY_AUTH_SECRET"]


@pytest.mark.parametrize(
    "name, secret",
    [
        ("OPENAI_API_KEY", True),
        ("HF_TOKEN", True),
        ("GITHUB_TOKEN", True),
        ("APIKEY", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("DB_PASSWORD", True),
        ("AUTHORIZATION", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("my_token", True),
        ("TOKENSECRET", True),
        ("TINYGPT_BUDGET_TOKENS", False),
        ("MAX_TOKENS", False),
        ("PATH", False),
        ("EVO_SEED", False),
        ("OMP_NUM_THREADS", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_job_validation_and_fresh_workdir(tmp_path):
    with pytest.raises(EvaluatorError, match="argv is empty"):
        EvalJob(argv=[], workdir=tmp_path / "x", metric="m")
    with pytest.raises(EvaluatorError, match="timeout"):
        EvalJob(argv=["true"], workdir=tmp_path / "x", metric="m", timeout=0)
    with pytest.raises(EvaluatorError, match="plain, free file name"):
        EvalJob(argv=["true"], workdir=tmp_path / "x", metric="m", files={"../x.py": ""})
    with pytest.raises(EvaluatorError, match="share a name"):
        EvalJob(
            argv=["true"],
            workdir=tmp_path / "x",
            metric="m",
            files={"h.py": ""},
            harness=[tmp_path / "h.py"],
        )
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.txt").write_text("x")
    with pytest.raises(EvaluatorError, match="must be new or empty"):
        run_job(make_job(tmp_path, "pass", name="used"))
    with pytest.raises(EvaluatorError, match="harness file .* is missing"):
        run_job(make_job(tmp_path, "pass", harness=[tmp_path / "nope.py"]))


def test_command_that_cannot_start_is_a_crash(tmp_path):
    r = run_job(
        EvalJob(argv=[str(tmp_path / "no-such-binary")], workdir=tmp_path / "w", metric="m")
    )
    assert r.status == "crash" and r.reason.startswith("cannot start") and r.returncode is None


def test_remove_workdir_handles_read_only_dirs(tmp_path):
    r = run_job(
        make_job(
            tmp_path,
            """
        os.makedirs("locked/inner")
        open("locked/inner/f", "w").write("x")
        os.chmod("locked/inner", 0o500)
        os.chmod("locked", 0o000)
        report({"score": 1})
    """,
        )
    )
    assert r.status == "ok"
    remove_workdir(tmp_path / "w")
    assert not (tmp_path / "w").exists()


def _write_target(root: Path) -> Path:
    root.mkdir()
    (root / "harness.py").write_text(
        textwrap.dedent("""
        import json, os, sys
        def finish(score):
            with open(os.environ["EVO_RESULT"], "w") as f:
                json.dump({"score": score, "argv": sys.argv[1:],
                           "level": os.environ.get("LEVEL", "")}, f)
    """)
    )
    (root / "prog.py").write_text("import harness\nharness.finish(1.0)\n")
    (root / "target.toml").write_text(
        textwrap.dedent("""
        name = "toy"
        evolve = "prog.py"
        harness = ["harness.py"]
        metric = "score"
        direction = "maximize"
        timeout = 30
        [fidelity.quick]
        env = { LEVEL = "quick" }
        args = ["--steps", "3"]
        timeout = 5
        [fidelity.long]
        env = { LEVEL = "long" }
    """)
    )
    return root


def test_evaluate_program_uses_the_targets_fidelity(tmp_path):
    target = load_target(_write_target(tmp_path / "toy"))
    r = evaluate_program(
        target,
        "import harness, os\nharness.finish(float(os.environ['EVO_SEED']))\n",
        workdir=tmp_path / "c1",
        seed=5,
    )
    assert r.status == "ok" and r.metrics["score"] == 5.0
    assert r.info["level"] == "quick" and r.info["argv"] == ["--steps", "3"]
    assert stat.S_IMODE(os.stat(tmp_path / "c1" / "harness.py").st_mode) == 0o444
    r = evaluate_program(
        target,
        "import time\ntime.sleep(30)\n",
        workdir=tmp_path / "c2",
        fidelity="long",
        timeout=0.5,
        extra_env={"LEVEL": "overridden"},
    )
    assert r.status == "timeout" and r.reason == "timeout after 0.5 s"
    r = evaluate_program(
        target,
        "import harness\nharness.finish(2.0)\n",
        workdir=tmp_path / "c3",
        fidelity="long",
        extra_env={"LEVEL": "overridden"},
    )
    assert r.info["level"] == "overridden" and r.info["argv"] == []
    with pytest.raises(TargetError, match="unknown fidelity 'huge'"):
        evaluate_program(target, "", workdir=tmp_path / "c4", fidelity="huge")
