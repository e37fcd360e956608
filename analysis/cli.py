"""The ``evo plot``, ``evo report`` and ``evo ablate`` subcommands (registered by evo.cli).

Each command returns its exit status; an :class:`AnalysisError` (bad input) is printed as one
line on stderr with status 2, whether or not evo.cli maps it too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from analysis.errors import AnalysisError


def add_parser(sub: argparse._SubParsersAction, name: str, helptext: str) -> None:
    """Add subcommand ``name`` (``plot``, ``report`` or ``ablate``) to ``sub``."""
    if name == "plot":
        p = sub.add_parser(
            "plot",
            help=helptext,
            description="Write PNG plots of one run, or "
            "of several runs overlaid: archive heatmap, fitness frontier, "
            "QD-score and coverage, diversity, operator table, lineage of the "
            "best. Works on a live run.",
        )
        p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
        p.add_argument(
            "--out", help="folder for the PNG files (default RUN_DIR/plots of the first run)"
        )
        p.set_defaults(func=_guard(_cmd_plot))
    elif name == "report":
        p = sub.add_parser(
            "report",
            help=helptext,
            description="Print a Markdown report of a "
            "run and write it to RUN_DIR/report.md: the best program's diff "
            "against the seed hunk by hunk, hit rate, saturation, noise floor "
            "and rejected would-be elites, failures, cost.",
        )
        p.add_argument("run_dir", metavar="RUN_DIR")
        p.add_argument("--out", help="where to write the report (default RUN_DIR/report.md)")
        p.set_defaults(func=_guard(_cmd_report))
    elif name == "ablate":
        p = sub.add_parser(
            "ablate",
            help=helptext,
            description="Evaluate each edit of the best "
            "program alone on the seed and the best without each edit, with the "
            "run's seeds; say which edits matter and whether they add up. "
            "Writes RUN_DIR/ablation.md and ablation.json.",
        )
        p.add_argument("run_dir", metavar="RUN_DIR")
        p.add_argument(
            "--seeds", type=int, help="seeds per variant (default: the run's [noise] seeds)"
        )
        p.add_argument("--workers", type=int, help="parallel evaluations (default: the run's)")
        p.add_argument("--program", help="id prefix of the program to ablate (default: the best)")
        p.set_defaults(func=_guard(_cmd_ablate))
    else:
        raise ValueError(f"analysis.cli.add_parser: unknown command {name!r}")


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except AnalysisError as e:
            print(f"evo {args.command}: error: {e}", file=sys.stderr)
            return 2

    run.__doc__ = fn.__doc__
    return run


def _cmd_plot(args: argparse.Namespace) -> int:
    """Write the plots and list the files."""
    from analysis.plots import write_plots

    for path in write_plots(args.run_dirs, args.out).values():
        print(path)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """Print the report and write report.md."""
    from analysis.report import render_report, write_report

    rep, path = write_report(args.run_dir, args.out)
    sys.stdout.write(render_report(rep))
    print(f"\n(written to {path})")
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    """Run the ablation, print it and write ablation.md/.json."""
    from analysis.ablation import ablate, render_ablation, write_ablation

    def progress(done: int, total: int) -> None:
        print(f"\revo ablate: {done}/{total} evaluations", end="", file=sys.stderr, flush=True)

    ab = ablate(
        args.run_dir,
        program=args.program,
        seeds=args.seeds,
        workers=args.workers,
        on_result=progress,
    )
    print(file=sys.stderr)
    md, js = write_ablation(ab)
    sys.stdout.write(render_ablation(ab))
    print(f"\n(written to {md} and {js})")
    return 0
