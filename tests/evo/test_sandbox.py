"""The bubblewrap sandbox and the result channel against hostile children, one escape each.

Every child here is a real program run by the real evaluator inside a real bubblewrap; each
escape works without the sandbox (``sandbox=None``, today's behaviour before it), which
``test_escapes_work_without_the_sandbox`` shows for the filesystem and network ones. These
tests need a working ``bwrap``: where it is missing they are skipped with the reason, and
``EVO_REQUIRE_BWRAP=1`` (set by ``.ci/run`` once it installed bubblewrap) turns that skip into
a failure, so CI never passes them silently.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from evo.evaluation import EvalCall, resolve_sandbox, run_job
from evo.evaluation.isolation import Sandbox, SandboxError
from evo.target import load_target
from tests.evo.evaluator_helpers import make_job, sandbox_for_tests
from tests.evo.loop_helpers import quadratic_target, run_evo, write_config


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return sandbox_for_tests(required=True)


@pytest.fixture
def run_dir() -> Path:
    """A run dir outside /tmp (the sandbox's private /tmp would cover one there anyway)."""
    base = Path(tempfile.mkdtemp(prefix="evo-sandbox-test-", dir="/var/tmp"))
    (base / "children").mkdir()
    (base / "archive.h5").write_bytes(b"the run's archive")
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _run(box: Sandbox | None, run_dir: Path, body: str, name: str = "c1", **kw):
    box = box.with_hidden(run_dir) if box is not None else None
    return run_job(make_job(run_dir / "children", body, name=name, sandbox=box, **kw))


def _outside() -> list[Path]:
    """Paths a child must not be able to create: in home, /var/tmp and the current dir."""
    tag = f"evo-escape-{uuid.uuid4().hex[:8]}"
    return [Path(os.path.expanduser("~")) / tag, Path("/var/tmp") / tag, Path.cwd() / tag]


def test_writes_outside_the_working_dir_fail_and_change_nothing(box, run_dir):
    targets = _outside()
    for i, path in enumerate(targets):
        r = _run(box, run_dir, f"open({str(path)!r}, 'w').write('x')\n", name=f"w{i}")
        assert r.status == "crash", r
        assert "Read-only file system" in r.reason, r.reason
        assert not path.exists()


def test_the_run_dir_through_dotdot_is_hidden_and_read_only(box, run_dir):
    before = (run_dir / "archive.h5").read_bytes()
    r = _run(box, run_dir, "print(sorted(os.listdir('../..')))\nopen('../../archive.h5', 'wb')\n")
    assert r.status == "crash"
    assert "Read-only file system" in r.reason
    assert "archive.h5" not in r.stdout_tail  # hidden: the child sees an empty run dir
    assert (run_dir / "archive.h5").read_bytes() == before


def test_another_evaluations_working_dir_is_invisible(box, run_dir):
    sibling = run_dir / "children" / "other"
    sibling.mkdir()
    (sibling / "train.py").write_text("SECRET = 'best program so far'\n")
    r = _run(box, run_dir, "print(open('../other/train.py').read())\n")
    assert r.status == "crash" and "No such file or directory" in r.reason
    assert "best program" not in r.stdout_tail + r.stderr_tail


def test_home_is_hidden_and_private_tmp_is_the_childs_own(box, run_dir):
    tag = uuid.uuid4().hex[:8]
    secret = Path(os.path.expanduser("~")) / f"evo-test-secret-{tag}"
    host_tmp = Path("/tmp") / f"evo-test-host-{tag}"
    secret.write_text("a credential")
    host_tmp.write_text("another run's file")
    try:
        body = f"""
        open('/tmp/mine-{tag}', 'w').write('x')
        report({{'score': 1.0, 'home': os.listdir({str(secret.parent)!r}),
                 'tmp': sorted(os.listdir('/tmp'))}})
        """
        r = _run(box, run_dir, body)
    finally:
        secret.unlink()
        host_tmp.unlink()
    assert r.ok, r.reason
    assert secret.name not in r.info["home"]
    assert f"mine-{tag}" in r.info["tmp"] and host_tmp.name not in r.info["tmp"]
    assert not Path(f"/tmp/mine-{tag}").exists()


def test_no_network_not_even_loopback(box, run_dir):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        r = _run(
            box, run_dir, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)\n"
        )
        assert r.status == "crash" and "Connection refused" in r.reason, r.reason
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever connected
    finally:
        server.close()


def test_network_opt_in_reaches_loopback(box, run_dir):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    try:
        body = (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2).close()\n"
            "report({'score': 1.0})\n"
        )
        assert _run(box.with_network(), run_dir, body).ok
    finally:
        server.close()


def _alive(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_a_setsid_daemon_with_an_empty_environment_dies_with_the_evaluation(box, run_dir):
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}.5"  # sleep's argument, unique to this test
    body = f"""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execve('/bin/sleep', ['sleep', {marker!r}], {{}})
        os._exit(0)
    report({{'score': 1.0}})
    """
    r = _run(box, run_dir, body, timeout=20)
    assert r.ok, r.reason
    time.sleep(0.2)
    assert _alive(marker) == []


def test_escapes_work_without_the_sandbox(run_dir):
    """Today's evaluator without bubblewrap: the same children get out (why the sandbox)."""
    [home_file, *_] = _outside()
    try:
        r = _run(None, run_dir, f"open({str(home_file)!r}, 'w').write('x')\nreport({{'score': 1}})")
        assert r.ok and home_file.exists()
    finally:
        home_file.unlink(missing_ok=True)
    (run_dir / "children" / "other").mkdir()
    (run_dir / "children" / "other" / "x").write_text("seen")
    r = _run(None, run_dir, "report({'score': 1, 'x': open('../other/x').read()})", name="c2")
    assert r.info["x"] == "seen"


# --- the result channel: a program in the harness's process cannot plant a result ------------

EVALUATOR = """
import importlib.util

def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": min(1.0, float(module.score()))}
"""

FORGERIES = {
    # The report's case: write $EVO_RESULT (or result.json) and exit before evaluate() returns.
    "write_file_then_exit": (
        """
        import json, os
        path = os.environ.get("EVO_RESULT", "result.json")
        json.dump({"combined_score": 1e9}, open(path, "w"))
        os._exit(0)
        """,
        "invalid_result",
        "wrote no result",
    ),
    # Find the channel's descriptor in /proc/self/fd and write a result there, then exit.
    "write_every_pipe_then_exit": (
        """
        import json, os
        line = (json.dumps({"token": "guess", "result": {"combined_score": 1e9}}) + "\\n").encode()
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                os.write(fd, line)
            except OSError:
                pass
        os._exit(0)
        """,
        "invalid_result",
        "without the harness's token",
    ),
    # Write a result to every pipe and let the evaluation go on: the harness's is the second.
    "write_every_pipe_and_return": (
        """
        import json, os
        line = (json.dumps({"result": {"combined_score": 1e9}}) + "\\n").encode()
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                os.write(fd, line)
            except OSError:
                pass
        def score():
            return 0.25
        """,
        "invalid_result",
        "without the harness's token",
    ),
    # Patch json.dumps and register an atexit hook that writes again: neither runs or counts.
    "patch_json_and_atexit": (
        """
        import atexit, json, os
        _real = json.dumps
        json.dumps = lambda obj, *a, **k: _real({"combined_score": 1e9})
        atexit.register(lambda: open("result.json", "w").write('{"combined_score": 1e9}'))
        def score():
            return 0.25
        """,
        "ok",
        "",
    ),
    # A thread that writes a result after evaluate() returned: the runner has exited by then.
    "late_thread": (
        """
        import json, os, threading, time
        def late():
            time.sleep(0.3)
            for fd in map(int, os.listdir("/proc/self/fd")):
                try:
                    os.write(fd, b'{"combined_score": 1e9}\\n')
                except OSError:
                    pass
        threading.Thread(target=late).start()
        def score():
            return 0.25
        """,
        "ok",
        "",
    ),
}


@pytest.mark.parametrize("kind", sorted(FORGERIES))
@pytest.mark.parametrize("sandboxed", [True, False], ids=["bwrap", "bare"])
def test_a_program_cannot_plant_its_result(kind, sandboxed, request, run_dir):
    box = request.getfixturevalue("box") if sandboxed else None
    folder = run_dir.parent / f"oe-{kind}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    try:
        program, status, reason = FORGERIES[kind]
        (folder / "initial_program.py").write_text(textwrap.dedent(program))
        (folder / "evaluator.py").write_text(EVALUATOR)
        target = load_target(folder)
        box = box.with_hidden(run_dir) if box is not None else None
        call = EvalCall(target, target.seed_source(), run_dir / "children" / kind, sandbox=box)
        r = call(None)
        assert r.status == status, (r.status, r.reason)
        assert reason in r.reason
        if status == "ok":
            assert r.metrics["combined_score"] == 0.25
        assert "1e9" not in json.dumps(r.metrics)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_forged_result_never_beats_the_harness_in_tinygpt(box, run_dir):
    """tinygpt's harness runs in train.py's process and reports through the channel."""
    target = load_target(Path(__file__).resolve().parents[2] / "targets" / "tinygpt")
    forged = (
        "import json, os\n"
        "json.dump({'val_bpb': 0.01}, open(os.environ.get('EVO_RESULT', 'result.json'), 'w'))\n"
        "os._exit(0)\n"
    ) + target.seed_source()
    call = EvalCall(target, forged, run_dir / "children" / "tg", sandbox=box.with_hidden(run_dir))
    r = call(None)
    assert r.status == "invalid_result" and "wrote no result" in r.reason
    assert "EVO_RESULT" not in r.stderr_tail


def test_bwrap_required_but_missing_is_one_line(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    broken = fake / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    with pytest.raises(SandboxError, match=r"^sandbox.kind = 'bwrap' but .*No permissions"):
        resolve_sandbox("bwrap", executable=str(broken))
    box, warning = resolve_sandbox("auto", executable=str(broken))
    assert not box.active and "No permissions to create new namespace" in warning
    assert "\n" not in warning


def test_evo_run_without_bubblewrap(tmp_path):
    """kind = "bwrap": one line, exit 2, no run dir; kind = "auto": one warning, recorded."""
    target = quadratic_target(tmp_path)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    for kind in ("bwrap", "auto"):
        config = write_config(tmp_path / f"{kind}.toml", target, tmp_path / kind, evaluations=3)
        config.write_text(config.read_text() + f'[sandbox]\nkind = "{kind}"\n')
        r = run_evo("run", str(config), "--no-progress", PATH=str(empty))
        if kind == "bwrap":
            assert r.returncode == 2, r.stderr
            assert r.stderr.strip().splitlines() == [
                "evo run: error: sandbox.kind = 'bwrap' but bubblewrap does not work here "
                "(bwrap is not on PATH); install it (Debian/Ubuntu: apt-get install "
                "bubblewrap) or set sandbox.kind = 'auto'"
            ]
            assert not (tmp_path / kind).exists()
            continue
        assert r.returncode == 0, r.stderr
        warnings = [ln for ln in r.stderr.splitlines() if "no sandbox" in ln]
        assert len(warnings) == 1 and "bwrap is not on PATH" in warnings[0]
        assert "no sandbox" in (tmp_path / kind / "evo.log").read_text()
        recorded = json.loads((tmp_path / kind / "environment.json").read_text())["sandbox"]
        assert recorded == "none (bubblewrap: bwrap is not on PATH)"


def test_a_path_the_sandbox_hides_gets_a_hint_a_missing_file_of_its_own_does_not(box, run_dir):
    data = Path(os.path.expanduser("~")) / f"evo-test-data-{uuid.uuid4().hex[:8]}.csv"
    data.write_text("1,2\n")
    try:
        r = _run(box, run_dir, f"open({str(data)!r}).read()\n", name="h1")
    finally:
        data.unlink()
    assert r.status == "crash" and "No such file or directory" in r.reason
    assert "sandbox.read" in r.reason, r.reason
    r = _run(box, run_dir, "open('data.csv').read()\n", name="h2")
    assert r.status == "crash" and "No such file or directory" in r.reason
    assert "sandbox" not in r.reason, r.reason
    r = _run(None, run_dir, f"open({str(data)!r}).read()\n", name="h3")
    assert r.status == "crash" and "sandbox" not in r.reason  # no sandbox, no hint


def test_read_entries_that_show_nothing_are_named_at_start(box):
    home = os.path.expanduser("~")
    missing = f"/var/tmp/evo-no-such-{uuid.uuid4().hex[:8]}"
    _, warning = resolve_sandbox("bwrap", read=[missing, home, "/usr/lib"])
    assert warning is not None and warning.startswith("sandbox.read: ") and "\n" not in warning
    assert f"{missing} does not exist" in warning
    assert f"{home} is or holds a hidden dir" in warning
    assert "/usr/lib" not in warning  # usable (visible anyway): nothing to say
    assert resolve_sandbox("bwrap", read=["/usr/lib"])[1] is None
