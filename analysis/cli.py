"""The ``evo plot``, ``evo report`` and ``evo ablate`` subcommands (registered by evo.cli).

Each command returns its exit status; evo.cli prints an :class:`AnalysisError` (bad input) as
one line on stderr and exits with status 2, like its own user errors.
"""

from __future__ import annotations

import argparse
import sys


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``plot``, ``report`` and ``ablate`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "plot",
        help="write PNG plots of a run's diversity and fitness frontier",
        description="Write PNG plots of one run, or "
        "of several runs overlaid: archive heatmap, fitness frontier, "
        "QD-score and coverage, diversity, operator table, lineage of the "
        "best. Works on a live run.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument(
        "--out", help="folder for the PNG files (default RUN_DIR/plots of the first run)"
    )
    p.set_defaults(func=_cmd_plot)
    p = sub.add_parser(
        "report",
        help="write report.md: best diff, hit rate, saturation, noise",
        description="Print a Markdown report of a "
        "run and write it to RUN_DIR/report.md: the best program's diff "
        "against the seed hunk by hunk, hit rate, saturation, noise floor "
        "and rejected would-be elites, failures, cost.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", help="where to write the report (default RUN_DIR/report.md)")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser(
        "ablate",
        help="leave-one-out and add-one-in ablation of the best edits",
        description="Evaluate each edit of the best "
        "program alone on the seed and the best without each edit, with the "
        "run's seeds; say which edits matter and whether they add up. "
        "Writes RUN_DIR/ablation.md and ablation.json.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--seeds", type=int, help="seeds per variant (default: the run's [noise] seeds)")
    p.add_argument("--workers", type=int, help="parallel evaluations (default: the run's)")
    p.add_argument("--program", help="id prefix of the program to ablate (default: the best)")
    p.set_defaults(func=_cmd_ablate)


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
