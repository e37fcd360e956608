"""Inputs people really have: evaluator-reported errors, NaN and out-of-range descriptors,
counters after a crash, budgets too small to search, and a SIGKILL without a memory limit.

Each test builds its own small target in ``tmp_path`` and runs it for real (subprocesses,
the real store); none uses a peer's files.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

import evo
from analysis.report import build_report, render_report
from analysis.rundata import load_run
from archive import RunStore
from evo.cli import main as cli_main
from evo.cli import status_dict
from evo.evaluation import run_job
from evo.progress import print_summary
from tests.evo.evaluator_helpers import make_job
from tests.evo.loop_helpers import quadratic_target, run_evo, search_config

# --- evaluator-reported errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "status", "reason"),
    [
        ({"score": 0.0, "error": "No module named 'jax'"}, "crash", "No module named 'jax'"),
        ({"score": 0.3, "error_message": "stage 2 failed"}, "crash", "stage 2 failed"),
        ({"error": "could not load the task"}, "crash", "could not load the task"),
        ({"score": 0.0, "artifacts": {"failure_reason": "timeout in stage 1"}}, "crash", "stage 1"),
        ({"score": 0.5, "error": 0.125}, "ok", ""),  # a numeric "error" is a metric
        ({"score": 0.5, "error": "  "}, "ok", ""),  # an empty message is no error
    ],
)
def test_an_error_beside_the_score_is_a_failure_with_its_message(tmp_path, result, status, reason):
    r = run_job(make_job(tmp_path, f"report({result!r})\n"))
    assert r.status == status, r.reason
    assert reason in r.reason
    if status == "crash":
        assert r.reason.startswith("evaluator error: ")


def _openevolve_folder(tmp_path: Path, evaluate_body: str) -> Path:
    folder = tmp_path / "oe"
    folder.mkdir()
    (folder / "initial_program.py").write_text("X = 1.0\nY = 2.0\n\n\ndef f():\n    return X + Y\n")
    (folder / "evaluator.py").write_text(
        "import importlib.util\n"
        "from openevolve.evaluation_result import EvaluationResult\n\n\n"
        "def evaluate(path):\n"
        "    spec = importlib.util.spec_from_file_location('p', path)\n"
        "    m = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(m)\n" + textwrap.indent(textwrap.dedent(evaluate_body), "    ")
    )
    return folder


def test_a_seed_whose_evaluator_reports_an_error_stops_the_run(tmp_path):
    folder = _openevolve_folder(
        tmp_path, 'return {"combined_score": 0.0, "error": "No module named \'jax\'"}\n'
    )
    r = run_evo("run", str(folder), "--run-dir", str(tmp_path / "run"), "--evaluations", "6")
    assert r.returncode == 2
    first = r.stderr.strip().splitlines()[0]
    assert "fails its baseline" in first and "evaluator error: No module named 'jax'" in first


MARKUP = "X must stay 1 [/bold] [descriptors]"  # rich reads [..] as style tags; [/x] crashes


def test_childrens_errors_and_artifacts_reach_status_report_and_prompts(
    tmp_path, capsys, monkeypatch
):
    folder = _openevolve_folder(
        tmp_path,
        """
        if m.X != 1.0:  # every child that moves X fails in the evaluator
            return EvaluationResult(metrics={"combined_score": 0.0,
                                             "error": "X must stay 1 [/bold] [descriptors]"},
                                    artifacts={"stage": "check", "detail": f"X={m.X}"})
        return EvaluationResult(metrics={"combined_score": 1.0 / (1.0 + abs(m.Y - 5.0))},
                                artifacts={"stage": "scored", "stdout": "fine"})
        """,
    )
    run_dir = tmp_path / "run"
    cfg = search_config(folder, run_dir, 12, operators={"tpe": 0.0, "tpe_local": 0.0})
    search = evo.Search(cfg, progress=False)
    summary = search.run()
    store = RunStore.read(run_dir)
    failed = [p for p in store.programs.values() if p.status == "crash"]
    assert summary.failure_reasons == [("crash", f"evaluator error: {MARKUP}", len(failed))]
    assert failed and all(p.reason == f"evaluator error: {MARKUP}" for p in failed)
    assert all(p.artifacts["stage"] == "check" for p in failed)
    seed = store.programs[(search.seed_id, "default")]
    assert seed.artifacts == {"stage": "scored", "stdout": "fine"}
    info = status_dict(store)
    assert ("crash", f"evaluator error: {MARKUP}", len(failed)) in info["failure_reasons"]
    monkeypatch.setenv("COLUMNS", "300")  # the status table, shown as written (no markup)
    out = io.StringIO()
    print_summary(summary, file=out)  # the closing table, too
    assert any(
        f"crash x{len(failed)}" in line and f"evaluator error: {MARKUP}" in line
        for line in out.getvalue().splitlines()
    )
    assert cli_main(["status", str(run_dir)]) == 0
    shown = capsys.readouterr().out
    assert f"evaluator error: {MARKUP}" in shown
    assert "none (no LLM proposal in this run)" in shown  # not "$0.0000 ... failed proposals"
    report = render_report(build_report(load_run(run_dir)))
    assert f"evaluator error: {MARKUP}" in report
    feedback = "\n".join(search.proposer._feedback(store, seed))
    assert f"evaluator error: {MARKUP}" in feedback and "stage: check" in feedback
    assert "the evaluator's artifacts for the parent:\nstage: scored" in feedback


# --- descriptors --------------------------------------------------------------------------

DESCRIBED = """\
name = "described"
evolve = "p.py"
metric = "score"
direction = "maximize"

[descriptors.width]
range = [0.0, 2.0]
bins = 4
"""


def _described_target(tmp_path: Path, width: str) -> Path:
    folder = tmp_path / "described"
    folder.mkdir()
    (folder / "target.toml").write_text(DESCRIBED)
    (folder / "p.py").write_text(
        "import json, os\n\nX = 1.0\nY = 3.0\n\n"
        f"width = {width}\n"
        "json.dump({'score': -abs(Y - 4.0), 'width': width}, open(os.environ['EVO_RESULT'], 'w'))\n"
    )
    return folder


def test_a_seed_with_a_nan_descriptor_is_a_one_line_error(tmp_path):
    folder = _described_target(tmp_path, "float('nan')")
    r = run_evo("run", str(folder), "--run-dir", str(tmp_path / "run"), "--evaluations", "6")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "descriptor 'width'=nan is not finite" in lines[0]
    assert "p.py" in lines[0]


def test_childrens_nan_and_out_of_range_descriptors_are_counted_not_dropped(tmp_path):
    # The seed's width is 100 (outside [0, 2]: clipped); a child that moves X reports NaN.
    folder = _described_target(tmp_path, "100.0 if X == 1.0 else float('nan')")
    run_dir = tmp_path / "run"
    evo.Search(search_config(folder, run_dir, 14), progress=False).run()
    store = RunStore.read(run_dir)
    ok = [p for p in store.programs.values() if p.status == "ok"]
    nan = [p for p in ok if p.reason.startswith("not placed in the archive")]
    clipped = [p for p in ok if "outside its range [0, 2]" in p.reason]
    assert nan and clipped and len(nan) + len(clipped) == len(ok)
    notes = status_dict(store)["descriptor_notes"]
    assert notes["not placed"][0] == len(nan) and notes["outside range"][0] == len(clipped)
    assert "descriptor 'width'=nan is not finite" in notes["not placed"][1]
    report = render_report(build_report(load_run(run_dir)))
    assert f"- not placed: {len(nan)}" in report and f"- outside range: {len(clipped)}" in report


# --- counters from the journal ----------------------------------------------------------------


def _store_counts(store: RunStore) -> Counter:
    counts: Counter = Counter()
    for p in store.programs.values():
        if p.operator not in ("seed", "hand"):
            counts[(p.operator, "evaluated")] += 1
        if p.status not in ("ok", "pending"):
            counts[(p.operator, p.status)] += 1
    return counts


def test_operator_counts_are_rebuilt_from_the_store_on_resume(tmp_path):
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    evo.Search(search_config(target, run_dir, 10), progress=False).run()
    # A SIGKILL before the timer saved them: operators.json lags the journal (here: empty).
    (run_dir / "operators.json").write_text("{}\n")
    evo.Search(search_config(target, run_dir, 14), progress=False).run()
    saved = json.loads((run_dir / "operators.json").read_text())
    got = Counter({(op, k): v for op, c in saved.items() for k, v in c.items()})
    want = _store_counts(RunStore.read(run_dir))
    assert {k: got[k] for k in want} == dict(want)


# --- budgets and signals ---------------------------------------------------------------------


def test_a_budget_the_baseline_eats_is_a_warning_naming_the_numbers(tmp_path):
    target = quadratic_target(tmp_path)
    r = run_evo(
        "run",
        str(target),
        "--run-dir",
        str(tmp_path / "run"),
        "--evaluations",
        "2",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    warning = [ln for ln in r.stderr.splitlines() if "budget:" in ln]
    assert len(warning) == 1
    assert "run.evaluations = 2" in warning[0] and "the seed takes 2 runs" in warning[0]
    assert "at most 0 evaluation(s) are left for children" in warning[0]


def test_programs_left_pending_at_the_end_are_named(tmp_path):
    target = quadratic_target(tmp_path)
    toml = target / "target.toml"
    toml.write_text(
        toml.read_text().replace("timeout = 20", 'timeout = 20\ndefault_fidelity = "noisy"')
    )
    run_dir = tmp_path / "run"
    good = tmp_path / "good.py"
    good.write_text(
        (target / "bowl.py")
        .read_text()
        .replace("X = 3.0", "X = 1.0")
        .replace("Y = -2.0", "Y = -0.5")
    )
    assert run_evo("seed", str(run_dir), str(good), "--target", str(target)).returncode == 0
    # Noisy: the seed takes 3 runs; the variant's first run beats it by far, so it is confirmed
    # with 3 runs, but the budget ends after its first.
    cfg = search_config(target, run_dir, 4, workers=1)
    summary = evo.Search(cfg, progress=False).run()
    [left] = summary.pending
    assert left["runs"] == 1 and left["needed"] == 3
    text = evo.progress.verdict(summary)
    assert f"1 program left unfinished when the run stopped: {left['id'][:12]} (1 of 3 runs" in text
    assert "2 more evaluations" in text


def test_a_sigkill_without_a_memory_limit_is_a_crash_naming_the_signal(tmp_path):
    r = run_job(make_job(tmp_path, "import signal\nos.kill(os.getpid(), signal.SIGKILL)\n"))
    assert r.status == "crash" and r.reason.startswith("killed by SIGKILL")


def test_runs_made_by_earlier_versions_still_resume():
    """The fingerprints a default run stored before [sandbox], [log], cascade.thresholds,
    run.openevolve_config and the emitter existed (evo at 385c9f4): new sections and keys at their defaults
    must not change them, or every earlier run dir is refused on resume."""
    from evo.config import load_config, search_fingerprint, validate

    assert search_fingerprint(load_config(None, {})) == "fe68f4fe69cd6867"
    # the operator weights' defaults changed since: a run made with the old ones (as they were
    # resolved into its config) resumes under the new defaults; any other weight is another search
    before = {"constants": 1.0, "tpe": 1.0, "tpe_local": 1.0, "choice": 0.5, "toggle": 0.2}
    before |= {"uniform_crossover": 0.3, "merge": 0.5}
    old_run = load_config(None, {f"operators.{k}": v for k, v in before.items()})
    assert search_fingerprint(old_run) == "fe68f4fe69cd6867"
    assert search_fingerprint(load_config(None, {"operators.tpe": 3.0})) != "fe68f4fe69cd6867"
    # a config stored before archive.emitter and archive.patience existed reads them as off
    stored = load_config(None, {})
    del stored["archive"]["emitter"], stored["archive"]["patience"]
    validate(stored)
    assert stored["archive"]["emitter"] == 0.0
    assert search_fingerprint(stored) == "fe68f4fe69cd6867"
    for other in ({"archive.emitter": 0.3}, {"archive.patience": 3}):
        assert search_fingerprint(load_config(None, other)) != "fe68f4fe69cd6867"
    circle = {"run.target": "circle_packing"}
    assert search_fingerprint(load_config(None, circle)) == "53c90ef1202f9e84"
