"""The ``evo`` command. Every user error is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from analysis.cli import add_parsers as add_analysis_parsers
from analysis.errors import AnalysisError
from archive import (
    LockError,
    Program,
    RunStore,
    StoreError,
    estimate_noise,
    failure_reasons,
    placement_notes,
    remeasurement_runs,
)
from evo.config import YAML_SUFFIXES, ConfigError, load_config, to_toml
from evo.emitter import emitter_line, emitter_summary
from evo.evaluation import BackendError, EvaluatorError
from evo.proposal_log import llm_summary
from evo.rundir import RunError, read_json, report_fidelity
from evo.target import TargetError
from operators import OperatorConfigError, ValidationError

USER_ERRORS = (
    AnalysisError,
    ConfigError,
    TargetError,
    StoreError,
    LockError,
    OperatorConfigError,
    ValidationError,
    EvaluatorError,
    BackendError,
    RunError,
)


class CliError(Exception):
    """A user error found by the CLI itself."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except (*USER_ERRORS, CliError) as e:
        msg = str(e)
        first, _, rest = msg.partition("\n")
        print(f"evo {args.command}: error: {first}", file=sys.stderr)
        if rest:
            print(rest, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evo: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evo",
        description="Evolutionary code search for ML "
        "training scripts: a MAP-Elites archive of program variants.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser(
        "run",
        help="run (or resume) a search on a target or a run.toml",
        description="Run a search. TARGET is a run.toml, a target folder, an OpenEvolve "
        "config.yaml (its folder is the target), or the name of a built-in target (default: "
        "tinygpt). An OpenEvolve folder's config.yaml is read as evo's config; a run.toml and "
        "the flags override it. An existing run dir is resumed.",
    )
    r.add_argument(
        "target",
        nargs="?",
        help="run.toml, target folder, OpenEvolve config.yaml or built-in target name",
    )
    r.add_argument("--evaluations", type=int, help="budget: evaluation runs")
    r.add_argument("--hours", type=float, help="budget: wall-clock hours")
    r.add_argument("--dollars", type=float, help="budget: LLM dollars")
    r.add_argument("--workers", type=int, help="parallel slots (default: one per GPU or core)")
    r.add_argument("--run-dir", help="where the run lives (default runs/TARGET)")
    r.add_argument("--fidelity", help="run at this one fidelity of the target (no cascade)")
    r.add_argument("--timeout", type=float, help="seconds per evaluation (overrides the target)")
    r.add_argument("--seed", type=int, help="random seed of the operators and selection")
    r.add_argument(
        "--selection", help="parent selection: mixed (default), uniform, weighted or greedy"
    )
    r.add_argument(
        "--force-new",
        action="store_true",
        help="start over: an existing run in the run dir is moved aside to NAME.old-DATE "
        "(e.g. one made for another config, or whose seed failed before a fix)",
    )
    r.add_argument("--no-progress", action="store_true", help="no live progress display")
    r.add_argument(
        "--no-llm",
        action="store_true",
        help='no LLM operators, whatever the config says (llm.base_url = "")',
    )
    r.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config as TOML (a run.toml) and exit without running",
    )
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("seed", help="add hand-written variants, evaluated first by the next run")
    s.add_argument("run_dir")
    s.add_argument("files", nargs="+")
    s.add_argument("--target", help="create the run dir for this target if it does not exist")
    s.set_defaults(func=_cmd_seed)

    st = sub.add_parser("status", help="evaluations, failures, elites, coverage and best of a run")
    st.add_argument("run_dir")
    st.add_argument("--json", action="store_true", help="one JSON object")
    st.set_defaults(func=_cmd_status)

    b = sub.add_parser("best", help="print the best program's source (or its diff to the seed)")
    b.add_argument("run_dir")
    shown = b.add_mutually_exclusive_group()
    shown.add_argument("--diff", action="store_true", help="unified diff against the seed")
    shown.add_argument(
        "--artifacts",
        action="store_true",
        help="the evaluator's artifacts for the best program, as key: value lines",
    )
    b.set_defaults(func=_cmd_best)

    add_analysis_parsers(sub)
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from evo.loop import Search
    from evo.progress import print_summary

    config_path = None
    overrides: dict[str, Any] = {}
    if args.target:
        name = Path(args.target).name
        if name.endswith(".toml") and name != "target.toml":
            config_path = args.target
        elif name.lower().endswith(YAML_SUFFIXES):
            config_path = args.target  # an OpenEvolve config; its folder is the target
        else:
            overrides["run.target"] = args.target
    overrides.update(
        {
            "run.evaluations": args.evaluations,
            "run.hours": args.hours,
            "run.dollars": args.dollars,
            "backend.workers": args.workers,
            "run.run_dir": args.run_dir,
            "run.fidelity": args.fidelity,
            "run.timeout": args.timeout,
            "run.seed": args.seed,
            "archive.selection": args.selection,
        }
    )
    if args.fidelity is not None:  # one fidelity: a cascade from the config stays off
        overrides["cascade.levels"] = []
    if args.no_llm:
        overrides["llm.base_url"] = ""
    cfg = load_config(config_path, overrides)
    if args.print_config:
        from evo.openevolve_config import notices

        if Path(cfg["run"]["target"]).is_dir():  # portable: the file may be used elsewhere
            cfg["run"]["target"] = str(Path(cfg["run"]["target"]).resolve())

        for line in notices(cfg):
            print(f"evo: {line}", file=sys.stderr)
        sys.stdout.write(to_toml(cfg))
        return 0
    search = Search(
        cfg, force_new=args.force_new, progress=not args.no_progress and sys.stderr.isatty()
    )
    summary = search.run()
    print_summary(summary)
    # A run stopped by a signal is not a finished one: 128 + the signal, as shells report it.
    if summary.stopped.startswith("stopped by SIGTERM"):
        return 143
    return 130 if summary.stopped.startswith("stopped by Ctrl-C") else 0


def _cmd_seed(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.exists():
        if not args.target:
            raise CliError(
                f"{run_dir}: no such run dir; create it with "
                f"'evo seed {run_dir} FILE --target TARGET' or 'evo run'"
            )
        from evo.loop import Search

        cfg = load_config(None, {"run.target": args.target, "run.run_dir": str(run_dir)})
        search = Search(cfg, progress=False)
        try:
            search._open_store().close()
        finally:
            search._release_backend()
    from evo.niches import descriptors_for
    from evo.target import load_target
    from operators import SourceDecodeError, canonical_hash, decode_source, validate_child

    sources = []
    for f in args.files:
        path = Path(f)
        try:  # decoded as Python would (a byte-order mark, a PEP 263 coding line)
            sources.append((path, decode_source(path.read_bytes())[0]))
        except OSError as e:
            raise CliError(
                f"{path}: cannot read ({e.__class__.__name__}); give a Python file"
            ) from None
        except SourceDecodeError as e:
            raise CliError(f"{path}: {e}") from None
    with RunStore.open(run_dir, writer=True) as store:
        target = load_target(store.meta["target_root"])
        seed = target.seed_source()
        fidelity = store.meta["fidelity"]
        added = [canonical_hash(seed)]  # the target's seed is evaluated anyway
        for path, source in sources:
            try:
                validate_child(source, seed, block=target.block)
            except ValidationError as e:
                if e.kind != "noop":  # the seed itself is reported as a duplicate below
                    raise CliError(f"{path}: {e}") from None
        for path, source in sources:
            pid = canonical_hash(source)
            if (pid, fidelity) in store.programs or pid in added:
                print(
                    f"{path}: duplicate of program {pid[:12]} (same code up to comments and "
                    "formatting); not added"
                )
                continue
            store.add(
                Program(
                    id=pid,
                    source=source,
                    fidelity=fidelity,
                    operator="hand",
                    description=f"hand-written variant {path.name}",
                    birth=store.next_birth(),
                    descriptors=descriptors_for(source, seed),
                )
            )
            added.append(pid)
            print(f"{path}: added as {pid[:12]}; the next 'evo run' evaluates it first")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from evo.progress import remeasured_line
    from evo.proposal_log import outcomes_line, spend_lines

    store = RunStore.read(Path(args.run_dir))
    info = status_dict(store)
    if args.json:
        print(json.dumps(info, sort_keys=True))
        return 0
    from rich.console import Console

    from evo.progress import PlainTable, add_failure_rows

    t = PlainTable(title=f"evo status: {args.run_dir}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("target / fidelity", f"{info['target']} / {info['fidelity']}")
    t.add_row("evaluations", str(info["evaluations"]))
    t.add_row("programs", str(info["programs"]))
    t.add_row("by status", ", ".join(f"{k} {v}" for k, v in sorted(info["by_status"].items())))
    add_failure_rows(t, info["failure_reasons"][:5])
    for kind, (n, example) in sorted(info["descriptor_notes"].items()):
        t.add_row(f"ok, descriptor {kind}", f"{n} (e.g. {example[:250]})")
    t.add_row("elites / coverage", f"{info['elites']} / {info['coverage']:.1%}")
    t.add_row("QD-score", f"{info['qd_score']:.6g}")
    noise = info["noise"]
    t.add_row(
        "noise floor (1 eval)",
        "0 (deterministic: the seed's runs repeated exactly; no child is measured twice)"
        if noise["deterministic"]
        else f"{noise['floor']:.4g} (pooled, {noise['dof']} degrees of freedom)"
        if noise["dof"]
        else "unknown (no program measured twice yet)",
    )
    t.add_row("re-measurement runs", remeasured_line(info["remeasured"]))
    best = info["best"]
    t.add_row(
        f"best {info['metric']} ± std. error",
        "-"
        if best is None
        else f"{best['fitness']:.6g} ± {best['fitness_std'] or 0:.3g} ({best['id'][:12]})",
    )
    if line := emitter_line(info["emitter"], best and best["id"], info["emitter_off"]):
        t.add_row("climbing emitter", line)
    if len(info["levels"]) > 1:
        for level, row in info["levels"].items():
            b = row["best"]
            t.add_row(
                f"level {level}",
                f"{row['evaluations']} evaluations, {row['elites']} "
                f"elites, best {'-' if b is None else format(b['fitness'], '.6g')}",
            )
    llm = info.get("llm")
    t.add_row(
        "LLM cost",
        f"${info['cost']:.4f}, {info['tokens']} tokens (failed proposals included)"
        if llm or info["cost"] or info["tokens"]
        else "none (no LLM proposal in this run)",
    )
    if llm:
        t.add_row("LLM proposals", outcomes_line(llm))
        for outcome, reason in llm["last_reason"].items():
            t.add_row(f"  last {outcome}", reason[:500])
        for line in spend_lines(llm["usage"]):
            t.add_row("LLM spend", line)
        t.add_row("  of which failed proposals", f"${llm['failed_cost']:.4f}")
    Console().print(t)
    return 0


def status_dict(store: RunStore) -> dict[str, Any]:
    """The status of a run as plain data (``evo status --json``), at the reported level, with
    a line per level of a cascade."""
    fidelity = report_fidelity(store)
    programs = list(store.programs.values())
    levels = {}
    for level in store.meta.get("levels") or [fidelity]:
        stats = store.elites(level).stats()
        best = store.best(level)
        levels[level] = {
            "evaluations": sum(len(p.runs) for p in programs if p.fidelity == level),
            "programs": sum(p.fidelity == level for p in programs),
            "elites": stats.elites,
            "coverage": stats.coverage,
            "qd_score": stats.qd_score,
            "best": None
            if best is None
            else {"id": best.id, "fitness": best.fitness, "fitness_std": best.fitness_std},
        }
    top = levels[fidelity]
    llm = llm_summary(store.run_dir)
    noise = estimate_noise(
        (p for p in programs if p.fidelity == fidelity), store.meta.get("metric", "")
    )
    return {
        "target": store.meta.get("target"),
        "fidelity": fidelity,
        "metric": store.meta.get("metric"),
        "direction": store.meta.get("direction"),
        "evaluations": sum(len(p.runs) for p in programs),
        "programs": len(programs),
        "by_status": dict(store.counts_by_status()),
        "failure_reasons": failure_reasons(programs),
        "descriptor_notes": placement_notes(programs),
        "elites": top["elites"],
        "cells": store.elites(fidelity).stats().cells,
        "coverage": top["coverage"],
        "qd_score": top["qd_score"],
        "best": top["best"],
        "noise": {"floor": noise.floor, "dof": noise.dof, "deterministic": noise.deterministic},
        "remeasured": remeasurement_runs(programs),
        "emitter": emitter_summary(store, store.meta.get("fidelity") or fidelity),  # search level
        "emitter_off": _emitter_off(store.run_dir),
        "levels": levels,
        "cost": sum(p.cost for p in programs) + (llm["failed_cost"] if llm else 0.0),
        "tokens": sum(
            u.get("input_tokens", 0) + u.get("output_tokens", 0) for u in llm["usage"].values()
        )
        if llm and llm["usage"]
        else sum(p.tokens for p in programs),
        "llm": llm,
    }


def _emitter_off(run_dir: Path) -> str:
    """Why the run's climbing emitter does not run, as its last process wrote it ("" when it
    runs, or counters.json is missing or not ours)."""
    off = read_json(run_dir / "counters.json").get("emitter_off", "")
    return off if isinstance(off, str) else ""


def _cmd_best(args: argparse.Namespace) -> int:
    store = RunStore.read(Path(args.run_dir))
    best = store.best(report_fidelity(store))
    if best is None:
        raise CliError(f"{args.run_dir}: no program has been evaluated ok yet")
    if args.artifacts:
        if not best.artifacts:
            print(
                f"evo best: the best program {best.id[:12]} ({best.fidelity}) has no artifacts",
                file=sys.stderr,
            )
        sys.stdout.write("".join(f"{line}\n" for line in artifact_lines(best.artifacts)))
        return 0
    if not args.diff:
        _write_program(store, best.source)
        return 0
    seed = _seed_program(store)
    seed_src = seed.source if seed else ""
    diff = difflib.unified_diff(
        seed_src.splitlines(keepends=True),
        best.source.splitlines(keepends=True),
        fromfile="seed",
        tofile=f"best {best.id[:12]}",
    )
    text = "".join(diff)
    sys.stdout.write(text if text else "(the best program is the seed)\n")
    return 0


def artifact_lines(artifacts: dict[str, Any]) -> list[str]:
    """``key: value`` lines: strings as they are (a traceback keeps its lines), other values
    as JSON."""
    return [
        f"{k}: {v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
        for k, v in artifacts.items()
    ]


def _write_program(store: RunStore, source: str) -> None:
    """``source`` on stdout as the evolving file's bytes (the target's encoding, byte-order
    mark and line endings): ``evo best RUN > FILE`` writes the file the program ran as."""
    from evo.target import load_target
    from operators import FileForm, encode_source

    try:
        form = load_target(store.meta["target_root"]).form
    except (KeyError, TargetError):
        form = FileForm()  # the target folder is gone: UTF-8 unless the program declares one
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # a text-only stream (an embedding application's)
        sys.stdout.write(source)
        return
    sys.stdout.flush()
    out.write(encode_source(source, form))
    out.flush()


def _seed_program(store: RunStore) -> Program | None:
    seed_id = store.meta.get("seed_id")
    return store.programs.get((seed_id, store.meta.get("fidelity")))


if __name__ == "__main__":
    sys.exit(main())
