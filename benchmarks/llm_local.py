"""The LLM operators against a real small model served locally: what its proposals come to.

Starts llama.cpp's ``llama-server`` with Gemma 3 270M (:mod:`benchmarks.llama_server`), then
for each target and reply format runs ``evo`` with only the LLM operators for a fixed number
of proposals (``llm.max_proposals``) and reads the run's ``proposals.jsonl``: seconds and
tokens per proposal, and the share that became a valid new child, a duplicate, no change, an
unparsable reply, an edit that did not apply, an edit outside the EVOLVE-BLOCK, or a failed
request. A tiny model is a harsh client on purpose: it produces the malformed shapes a large
model produces now and then.

    python -m benchmarks.llm_local                     # circle_packing and tinygpt (tiny)
    python -m benchmarks.llm_local --proposals 6 --tiny-proposals 2   # what BENCHMARKS.md has
    python -m benchmarks.llm_local --proposals 4 --targets circle_packing --no-write
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import evo  # noqa: E402
from archive import RunStore  # noqa: E402
from benchmarks._report import table, update_section  # noqa: E402
from benchmarks.llama_server import LocalModel  # noqa: E402
from evo.proposal_log import OUTCOMES, REPLY_CHARS, read_proposals, summarise  # noqa: E402
from evo.proposals import STRUCTURAL  # noqa: E402
from operators.llm.edits import TURN_MARKER  # noqa: E402
from operators.llm.prompts import SYSTEM  # noqa: E402

FORMATS = ("definitions", "search_replace", "whole_file")
TARGETS = {"circle_packing": "default", "tinygpt": "tiny"}
SHOWN = [o for o in OUTCOMES if o not in ("budget", "cancelled")]


def run_one(
    model: LocalModel,
    target: str,
    fidelity: str,
    fmt: str,
    proposals: int,
    max_tokens: int,
    run_dir: Path,
) -> dict:
    """One evo run with only the LLM operators; its proposals summarised."""
    overrides = {
        "run.target": target,
        "run.run_dir": str(run_dir),
        "run.evaluations": 10_000,
        "run.fidelity": fidelity,
        "run.timeout": 900.0,  # the model shares the cores with the evaluations
        "backend.workers": 1,
        "bandit.initial_design": 0,
        **{f"operators.{name}": 0.0 for name in STRUCTURAL},
        "operators.llm_mutation": 1.0,
        "operators.llm_crossover": 0.5,
    }
    cfg = evo.load_config(None, overrides)
    cfg["llm"] = {
        "base_url": model.base_url,
        "models": [model.name],
        "format": fmt,
        "max_tokens": max_tokens,
        "timeout": 600.0,
        "retries": 1,
        "concurrency": 1,
        "max_failures": 0,
        "max_proposals": proposals,
    }
    evo.config.validate(cfg)
    t0 = time.monotonic()
    evo.Search(cfg, force_new=True, progress=False).run()
    return {**read_run(run_dir, target, fidelity, fmt), "seconds": time.monotonic() - t0}


def read_run(run_dir: Path, target: str, fidelity: str, fmt: str) -> dict:
    """What one run's LLM proposals came to, from its run dir alone."""
    records = read_proposals(run_dir)
    counters = json.loads((run_dir / "counters.json").read_text())
    usage = next(iter(counters["llm_usage"].values()), {})
    n = max(1, len(records))
    store = RunStore.read(run_dir)
    children = [p for p in store.programs.values() if p.operator.startswith("llm_")]
    why = Counter(
        f"{r['kind']}: {r['detail']}" if r.get("detail") else r["kind"]
        for r in records
        if r.get("outcome") != "new child"
    )
    return {
        "target": target,
        "fidelity": fidelity,
        "format": fmt,
        "seconds": sum(r.get("seconds") or 0 for r in records),
        "summary": summarise(records),
        "tokens_in": usage.get("input_tokens", 0) / n,
        "tokens_out": usage.get("output_tokens", 0) / n,
        "evaluated_ok": sum(p.ok for p in children),
        "why": ", ".join(f"{k} {v}" for k, v in why.most_common()),
        "diffs": [_diff(store, p) for p in children][:3],
        "records": records,
    }


def _diff(store: RunStore, child) -> str:
    parent = store.programs.get((child.parents[0], child.fidelity)) if child.parents else None
    old = parent.source if parent is not None else ""
    lines = difflib.unified_diff(
        old.splitlines(),
        child.source.splitlines(),
        "parent",
        f"child ({child.status})",
        lineterm="",
        n=1,
    )
    return "\n".join(list(lines)[:24])


def render(results: list[dict], model: LocalModel, wall: float, command: str) -> str:
    rows = []
    for r in results:
        s = r["summary"]
        n = max(1, s["proposals"])
        shares = [f"{s['outcomes'].get(o, 0) / n:.0%}" for o in SHOWN]
        secs = s["seconds_per_proposal"]
        rows.append(
            [
                f"{r['target']} ({r['fidelity']})",
                r["format"],
                s["proposals"],
                "-" if secs is None else f"{secs:.1f}",
                f"{r['tokens_in']:.0f} / {r['tokens_out']:.0f}",
                *shares,
                r["evaluated_ok"],
                r["why"] or "-",
            ]
        )
    out = [
        f"Model: {model.name} "
        f"served by llama.cpp's llama-server on loopback ({model.threads} threads, "
        f"{' '.join(model.template_flags()) or 'its default chat template'}). "
        f"{wall / 60:.1f} min of requests in all.",
        "",
        table(
            [
                "target",
                "format",
                "proposals",
                "s / proposal",
                "tokens in / out per proposal",
                *SHOWN,
                "children evaluated ok",
                "failures by kind",
            ],
            rows,
        ),
        "",
    ]
    replies = [rec.get("reply", "") for r in results for rec in r["records"]]
    if replies:
        echo = SYSTEM[:40]
        out += [
            f"What the replies held ({len(replies)} in all, the first {REPLY_CHARS} characters "
            f"of each failed one): {sum(t.lstrip().startswith(echo) for t in replies)} begin by "
            f"repeating the system prompt; {sum('```python' in t for t in replies)} hold a "
            f"```python fence; {sum('<<<<<<< SEARCH' in t for t in replies)} a SEARCH marker; "
            f"{sum(bool(TURN_MARKER.search(t)) for t in replies)} a chat-template marker.",
            "",
        ]
    diffs = [(r, d) for r in results for d in r["diffs"] if d]
    if diffs:
        out += ["Real child diffs (parent to child):", ""]
        for r, d in diffs[:3]:
            out += [f"{r['target']}, {r['format']}:", "", "```diff", d, "```", ""]
    out.append(f"Rerun: `{command}`")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proposals", type=int, default=8, help="per format on circle_packing")
    ap.add_argument("--tiny-proposals", type=int, default=4, help="per format on tinygpt")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    ap.add_argument("--max-tokens", type=int, default=768)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="llama-server threads (default 1: llama.cpp's threads spin while they wait, and "
        "the evaluations need a core of their own)",
    )
    ap.add_argument("--out", type=Path, default=None, help="keep the run dirs here")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    ap.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        help="render the table from the run dirs an earlier --out kept (runs nothing)",
    )
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="evo-llm-local-"))
    results = []
    if args.from_dir is not None:
        model = LocalModel(threads=args.threads)  # for its name and flags; not started
        for target in args.targets:
            for fmt in args.formats:
                run_dir = args.from_dir / f"{target}-{fmt}"
                if run_dir.exists():
                    results.append(read_run(run_dir, target, TARGETS[target], fmt))
        wall = sum(r["seconds"] for r in results)
        command = (
            f"python -m benchmarks.llm_local --proposals {args.proposals} "
            f"--tiny-proposals {args.tiny_proposals}"
        )
        return _publish(results, model, wall, command, out=args.from_dir, write=not args.no_write)
    t0 = time.monotonic()
    with LocalModel(threads=args.threads) as model:
        for target in args.targets:
            n = args.proposals if target == "circle_packing" else args.tiny_proposals
            for fmt in args.formats:
                r = run_one(
                    model, target, TARGETS[target], fmt, n, args.max_tokens, out / f"{target}-{fmt}"
                )
                results.append(r)
                print(
                    f"{target} {fmt}: {r['summary']['outcomes']} in {r['seconds']:.0f} s",
                    flush=True,
                )
    command = "python -m benchmarks.llm_local " + " ".join(argv or sys.argv[1:])
    return _publish(results, model, time.monotonic() - t0, command.strip(), out, not args.no_write)


def _publish(
    results: list[dict], model: LocalModel, wall: float, command: str, out: Path, write: bool
) -> int:
    (out / "replies.jsonl").write_text(
        "".join(
            json.dumps({"target": r["target"], "format": r["format"], **rec}) + "\n"
            for r in results
            for rec in r["records"]
        )
    )
    body = render(results, model, wall, command)
    print(body)
    print(f"run dirs and every reply: {out}")
    if write:
        update_section(
            "llm_local", "LLM operators on a local model (benchmarks/llm_local.py)", body, command
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
