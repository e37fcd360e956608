"""Which of OpenEvolve's own examples ``evo run`` runs unchanged, without an LLM.

Every folder under the checkout's ``examples/`` (at any depth) that holds ``initial_program.py``
and ``evaluator.py`` is copied to a temp dir and run with
``python -m evo.cli run FOLDER --run-dir RUNDIR --evaluations N --no-progress --no-llm`` (the
folder's config.yaml is read as a user's would be, but its LLM is turned off, so only the
structural operators propose children), under a wall-clock limit per
example; on the limit the process group gets SIGTERM, then SIGKILL with every descendant.
Output goes to files and only a capped head and tail of each is read, so an example that
hangs or floods output cannot stall the script. Folders whose initial program is not Python
(``initial_program.rs``) and folders with an ``evaluator.py`` but no initial program are
listed, not run.

Outcome of each example: ``ran`` (exit 0 and the programs' scores differ), ``ran, all equal``
(exit 0 but every ok evaluation gave the same score, e.g. all 0.0: the silent failure),
``stopped: <short cause>`` (exit 2, evo's one-line user error), ``crashed`` (any other exit)
or ``timeout``. The cause column: for exit 0 the best score against the seed's (from
``summary.json``) and the programs by status; otherwise the first line of stderr (for a
traceback its last line), plus the last line of the failed seed's stderr tail when evo printed
one; for a timeout the last line of ``evo.log``.

``--repo`` is an OpenEvolve working tree or a bare git dir (``examples/`` of its HEAD is
extracted with ``git archive``).

Run: ``PYTHONPATH=. python benchmarks/openevolve_examples.py --repo PATH [--evaluations 6]
[--timeout 180] [--only SUBSTR] [--keep-dir DIR] [--no-write]``
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._report import table, update_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "openevolve_examples"
READ_CAP = 64 * 1024  # bytes read from the head and from the tail of an output file
FLOOD_BYTES = 256 * 1024 * 1024  # evo's own stdout + stderr past this: killed as a flood
TERM_GRACE = 20.0  # seconds between SIGTERM and SIGKILL (evo stops its children on SIGTERM)
CAUSE_CHARS = 160
SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv", "venv"}

# Reads one run dir's programs in a child process (archive may be mid-edit or slow; a child
# with a timeout cannot stall or break the script). Prints one JSON object.
PROBE = r"""
import json, sys
from collections import Counter
from archive import RunStore
store = RunStore.read(sys.argv[1])
metric = store.meta.get("metric") or "combined_score"
seed_id = store.meta.get("seed_id")
values, statuses, reasons, seed = [], Counter(), Counter(), {}
for p in store.programs.values():
    statuses[p.status] += 1
    if p.status not in ("ok", "pending") and p.reason:
        reasons[p.reason.splitlines()[0][:200]] += 1
    for r in p.runs:
        v = r.metrics.get(metric)
        if r.status == "ok" and isinstance(v, (int, float)):
            values.append(float(v))
    if p.id == seed_id and not seed:
        arts = {k: str(v)[:300] for k, v in (p.artifacts or {}).items()
                if isinstance(k, str) and ("error" in k.lower() or "reason" in k.lower())}
        tail = [ln for ln in (p.stderr_tail or "").splitlines() if ln.strip()]
        seed = {"artifacts": arts, "stderr_last": tail[-1][:300] if tail else ""}
print(json.dumps({"values": values, "statuses": dict(statuses),
                  "reasons": reasons.most_common(3), "seed": seed}))
"""


@dataclass
class Outcome:
    example: str
    outcome: str
    wall: float
    cause: str
    detail: list[str] = field(default_factory=list)


# -- finding the examples ---------------------------------------------------------------


def examples_tree(repo: Path, tmp: Path) -> tuple[Path, str]:
    """The ``examples/`` dir of ``repo`` (extracted from HEAD when ``repo`` is a bare git dir)
    and a label of where it came from."""
    if (repo / "examples").is_dir():
        commit = _git(["-C", str(repo), "rev-parse", "--short=12", "HEAD"])
        return repo / "examples", f"working tree {repo}" + (f" at {commit}" if commit else "")
    if not (repo / "HEAD").is_file() or not (repo / "objects").is_dir():
        sys.exit(f"{repo}: neither a checkout with examples/ nor a bare git dir")
    archive = subprocess.run(
        ["git", f"--git-dir={repo}", "archive", "--format=tar", "HEAD", "examples"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        sys.exit(f"git archive failed in {repo}: {archive.stderr.decode(errors='replace')[:300]}")
    dest = tmp / "checkout"
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4
            tar.extractall(dest)  # noqa: S202 - our own git archive output
    commit = _git([f"--git-dir={repo}", "rev-parse", "--short=12", "HEAD"])
    return dest / "examples", f"bare git dir {repo}, HEAD {commit}"


def _git(args: list[str]) -> str:
    try:
        r = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def find_examples(examples: Path) -> tuple[list[Path], list[str], list[str]]:
    """Target folders (``initial_program.py`` + ``evaluator.py``), the folders left out for a
    non-Python initial program (``path (initial_program.rs)``), and those with an evaluator but
    no initial program; all relative to the parent of ``examples``."""
    targets, other_lang, no_program = [], [], []
    base = examples.parent
    for dirpath, dirnames, filenames in os.walk(examples):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        if "evaluator.py" not in filenames:
            continue
        d = Path(dirpath)
        rel = d.relative_to(base).as_posix()
        if "initial_program.py" in filenames:
            targets.append(d)
            continue
        seeds = sorted(f for f in filenames if f.startswith("initial_program."))
        if seeds:
            other_lang.append(f"{rel} ({', '.join(seeds)})")
        else:
            no_program.append(rel)
    return sorted(targets), sorted(other_lang), sorted(no_program)


# -- running one example ----------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of ``pid``, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[19]


def descendants(root: int) -> list[tuple[int, str]]:
    """(pid, start time) of every live descendant of ``root`` (whatever its session)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
                starts[int(entry)] = st[1]
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append((child, starts[child]))
            stack.append(child)
    return out


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group of ``proc`` (evo stops its own children then), SIGKILL to
    the group and to every descendant seen before, if still there after the grace period."""
    seen = descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=TERM_GRACE)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid, start in seen + descendants(proc.pid):
        st = _proc_stat(pid)
        if st is not None and st[1] == start:  # the same process, not a reused pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait()


def read_capped(path: Path) -> str:
    """The first and last ``READ_CAP`` bytes of ``path`` (all of it when smaller)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(0)
            data = f.read(READ_CAP)
            if size > 2 * READ_CAP:
                f.seek(size - READ_CAP)
                data += b"\n[...]\n" + f.read(READ_CAP)
            elif size > READ_CAP:
                data += f.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def trim(text: str, n: int = CAUSE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def fmt(x: object) -> str:
    return f"{x:.6g}" if isinstance(x, (int, float)) else "-"


def short_stop_cause(msg: str) -> str:
    """A short, example-independent cause for evo's one-line user error."""
    msg = msg.removeprefix("evo run: error: ")
    m = re.search(r"fails its baseline evaluation(?: at fidelity '[^']*')?: ([a-z_]+)", msg)
    if m:
        return f"seed fails its baseline ({m.group(1)})"
    if "nothing the structural operators can change" in msg:
        return "nothing to mutate without an LLM"
    # drop leading paths ("/tmp/x/initial_program.py: ..."), keep the first clause
    parts = [p for p in msg.split(": ") if p and not p.startswith(("/", "<"))]
    return trim(parts[0] if parts else msg, 60)


def stop_detail(first: str, stderr: str, copy: Path) -> str:
    """The cause column for evo's one-line error: what follows the path (and, for a failed
    seed, what follows its status), the last line of the seed's stderr tail when that adds
    something, and for a seed with nothing to mutate, what the seed's block holds."""
    msg = first.removeprefix("evo run: error: ")
    msg = re.sub(r"^<[^>]*>/[^:]*: ", "", msg)
    m = re.search(r"fails its baseline evaluation(?: at fidelity '[^']*')?: [a-z_]+: ", msg)
    if m:
        msg = msg[m.end() :]
    if "--- stderr tail ---" in stderr:
        tail = [ln for ln in stderr.split("--- stderr tail ---", 1)[1].splitlines() if ln.strip()]
        if tail and tail[-1].strip() not in msg:
            msg = f"{trim(msg, 110)} ⟶ {trim(tail[-1], 100)}"
    if "nothing the structural operators can change" in msg:
        msg = "seed: " + seed_shape(copy / "initial_program.py")
    return trim(msg, 220)


def seed_shape(path: Path) -> str:
    """What the structural operators could act on in the seed: EVOLVE-BLOCK markers, module-level
    assignments and numeric literals inside the block (the whole file without markers)."""
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError) as e:
        return f"unparsable ({type(e).__name__})"
    lines = source.splitlines()
    start = [i + 1 for i, ln in enumerate(lines) if "EVOLVE-BLOCK-START" in ln]
    end = [i + 1 for i, ln in enumerate(lines) if "EVOLVE-BLOCK-END" in ln]
    lo, hi = (start[0], end[-1]) if start and end else (1, len(lines))
    where = f"EVOLVE-BLOCK lines {lo}-{hi}" if start and end else "no EVOLVE-BLOCK markers"
    if start and end and lines[lo - 1][:1].isspace():
        where += " (indented)"
    nums = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and type(n.value) in (int, float)
        and lo <= getattr(n, "lineno", 0) <= hi
    ]
    floats = sum(type(n.value) is float for n in nums)
    consts = sum(
        isinstance(n, (ast.Assign, ast.AnnAssign)) and lo <= n.lineno <= hi for n in tree.body
    )
    return (
        f"{where}: {consts} module-level assignments, {floats} float and "
        f"{len(nums) - floats} int literals"
    )


def probe_run_dir(run_dir: Path, env: dict[str, str]) -> dict | None:
    try:
        r = subprocess.run(
            [sys.executable, "-c", PROBE, str(run_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def values_from_log(log: str) -> list[float]:
    """Fallback when the archive cannot be read: the ``fitness=`` of evo.log's ok lines."""
    return [float(v) for v in re.findall(r" ok fitness=([-+0-9.eEinfa]+)", log)]


def run_example(
    folder: Path, rel: str, work: Path, args: argparse.Namespace, env: dict[str, str]
) -> Outcome:
    copy = work / "examples" / rel
    shutil.copytree(folder, copy, symlinks=True)
    run_dir = work / "runs" / rel
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = work / "logs" / f"{rel}.out", work / "logs" / f"{rel}.err"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "evo.cli", "run", str(copy), "--run-dir", str(run_dir)]
    # The folder's own config.yaml is read (models, timeout, cascade); --no-llm keeps its
    # endpoint from being called: this measures what runs on structural operators alone.
    cmd += ["--evaluations", str(args.evaluations), "--no-progress", "--no-llm"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    timed_out = flooded = False
    t0 = time.monotonic()
    with out_path.open("wb") as fo, err_path.open("wb") as fe:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=fo,
            stderr=fe,
            cwd=work,
            env=env,
            start_new_session=True,
        )
        while proc.poll() is None:
            if time.monotonic() - t0 > args.timeout:
                timed_out = True
            elif out_path.stat().st_size + err_path.stat().st_size > FLOOD_BYTES:
                flooded = True
            if timed_out or flooded:
                stop(proc)
                break
            time.sleep(0.25)
    wall = time.monotonic() - t0
    rc = proc.returncode

    def clean(s: str) -> str:
        return s.replace(str(copy), f"<{Path(rel).name}>").replace(str(run_dir), "<run>")

    stderr = clean(read_capped(err_path))
    log = clean(read_capped(run_dir / "evo.log"))
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    log_lines = [ln for ln in log.splitlines() if ln.strip()]
    detail = [f"exit {rc}", *lines[-12:], *(["evo.log:", *log_lines[-8:]] if log_lines else [])]
    if timed_out:
        last = log_lines[-1].split(" ", 3)[-1] if log_lines else "no evo.log"
        return Outcome(
            rel, "timeout", wall, trim(f"killed after {args.timeout:g} s; {last}"), detail
        )
    if flooded:
        return Outcome(rel, "crashed", wall, f"output flood: over {FLOOD_BYTES >> 20} MiB", detail)
    if rc == 0:
        return _ran(rel, wall, run_dir, log, env, detail)
    # Start-up warnings (config.yaml keys evo does not use, no sandbox) come first: the
    # stop is evo's one "evo run: error:" line.
    first = next((ln for ln in lines if ln.startswith("evo run: error:")), "")
    first = first or (lines[0] if lines else "(no stderr)")
    if rc == 2 and first.startswith("evo run: error:"):
        return Outcome(
            rel,
            f"stopped: {short_stop_cause(first)}",
            wall,
            stop_detail(first, stderr, copy),
            detail,
        )
    if any(ln.startswith("Traceback") for ln in lines):
        first = next((ln for ln in reversed(lines) if not ln.startswith(" ")), first)
    return Outcome(rel, "crashed", wall, trim(f"exit {rc}: {first}"), detail)


def _ran(
    rel: str, wall: float, run_dir: Path, log: str, env: dict[str, str], detail: list[str]
) -> Outcome:
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError) as e:
        return Outcome(rel, "crashed", wall, trim(f"exit 0 but no readable summary.json: {e}"))
    probe = probe_run_dir(run_dir, env)
    values = probe["values"] if probe else values_from_log(log)
    statuses = (probe or {}).get("statuses") or summary.get("by_status") or {}
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
    best, seed = summary.get("best_fitness"), summary.get("seed_fitness")
    cause = f"best {fmt(best)} vs seed {fmt(seed)}"
    cause += " (improved)" if summary.get("improved") else " (not beaten)"
    cause += f"; programs {by_status}" if by_status else ""
    if probe and probe.get("reasons"):
        cause += f"; failed: {probe['reasons'][0][0]}"
    if len(set(values)) > 1:
        return Outcome(rel, "ran", wall, trim(cause, 220), detail)
    if values:
        flag = f"all programs scored {fmt(values[0])} ({len(values)} evaluations)"
    else:
        flag = "no evaluation scored ok"
    hint = ""
    if probe and probe.get("seed"):
        arts, last = probe["seed"].get("artifacts") or {}, probe["seed"].get("stderr_last")
        if arts:
            k, v = next(iter(arts.items()))
            hint = f"; seed {k}: {v}"
        elif last:
            hint = f"; seed stderr: {last}"
    return Outcome(rel, "ran, all equal", wall, trim(f"{flag}; {cause}{hint}", 260), detail)


# -- main -------------------------------------------------------------------------------


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rerun_command(args: argparse.Namespace) -> str:
    cmd = "PYTHONPATH=. python benchmarks/openevolve_examples.py --repo OPENEVOLVE_CHECKOUT"
    for flag, value, default in (
        ("--evaluations", args.evaluations, 6),
        ("--timeout", args.timeout, 180),
        ("--workers", args.workers, 0),
    ):
        if value != default:
            cmd += f" {flag} {value:g}"
    return cmd + (f" --only {args.only}" if args.only else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repo", type=Path, required=True, help="OpenEvolve checkout or bare git dir"
    )
    parser.add_argument("--evaluations", type=int, default=6, help="budget per example")
    parser.add_argument("--timeout", type=float, default=180, help="wall seconds per example")
    parser.add_argument("--workers", type=int, default=0, help="evo --workers (0: evo's default)")
    parser.add_argument(
        "--only",
        default="",
        help="run only examples whose path holds one of these (comma-separated)",
    )
    parser.add_argument("--keep-dir", type=Path, help="work here and keep copies, runs and logs")
    parser.add_argument("--details", action="store_true", help="print stderr/evo.log tails")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    repo = args.repo.resolve()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("COLUMNS", "120")
    started = time.monotonic()
    tmp_ctx = tempfile.TemporaryDirectory(prefix="evo-oe-examples-")
    try:
        tmp = Path(tmp_ctx.name)
        work = args.keep_dir.resolve() if args.keep_dir else tmp / "work"
        if work.exists() and any(work.iterdir()):
            sys.exit(f"{work}: not empty; choose an empty --keep-dir")
        work.mkdir(parents=True, exist_ok=True)
        examples, origin = examples_tree(repo, tmp)
        targets, other_lang, no_program = find_examples(examples)
        base = examples.parent
        results: list[Outcome] = []
        for folder in targets:
            rel = folder.relative_to(base).as_posix()
            if args.only and not any(part and part in rel for part in args.only.split(",")):
                continue
            r = run_example(folder, rel, work, args, env)
            results.append(r)
            print(f"{r.wall:6.1f} s  {r.outcome:<40}  {rel}", file=sys.stderr, flush=True)
            if args.details:
                print("\n".join("    " + trim(ln, 300) for ln in r.detail), file=sys.stderr)
    finally:
        tmp_ctx.cleanup()
    total = time.monotonic() - started
    results.sort(key=lambda r: r.example)
    rows = [[r.example, r.outcome, f"{r.wall:.1f}", cell(r.cause)] for r in results]
    counts = Counter(r.outcome for r in results)
    count_rows = [[cell(k), v] for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    body = (
        f"{len(results)} examples from {origin}; `evo run --evaluations {args.evaluations}"
        + (f" --workers {args.workers}" if args.workers else "")
        + "`, "
        f"no LLM, {args.timeout:g} s wall-clock limit each; total {total / 60:.1f} min.\n\n"
        + table(["example", "outcome", "wall s", "cause"], rows)
        + "\n\n"
        + table(["outcome", "examples"], count_rows)
        + "\n\n"
        + f"Not run, initial program not Python: {', '.join(other_lang) or 'none'}.\n"
        + f"Not run, `evaluator.py` but no initial program: {', '.join(no_program) or 'none'}.\n"
    )
    print(body)
    if not args.no_write:
        update_section(
            SECTION,
            "OpenEvolve examples under evo run",
            body,
            rerun_command(args),
        )


if __name__ == "__main__":
    main()
