"""Make the README's plot images: ``python -m analysis.make_docs_images [--out docs]``.

Runs two small real searches on circle_packing (evo's default uniform selection, and a greedy
baseline that always mutates the best), then writes ``docs/plot_NAME.png`` for every plot:
the overlays (frontier, QD-score and coverage, diversity) compare the two runs; the heatmap,
the operator table and the lineage show the evo run. Takes about a minute on two cores.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from analysis.plots import DPI, PLOTS
from analysis.rundata import load_run

OVERLAYS = ("frontier", "qd_coverage", "diversity")
MAX_BYTES = 200_000  # keep the repository light


def make_images(
    out: Path, runs_dir: Path, evaluations: int = 120, workers: int = 2
) -> dict[str, Path]:
    """Run the two searches in ``runs_dir`` and write the images into ``out``."""
    import evo

    evo_dir, greedy_dir = runs_dir / "evo_uniform", runs_dir / "greedy_baseline"
    evo.run(
        target="circle_packing",
        run_dir=str(evo_dir),
        evaluations=evaluations,
        workers=workers,
        seed=0,
    )
    evo.run(
        target="circle_packing",
        run_dir=str(greedy_dir),
        evaluations=evaluations,
        workers=workers,
        seed=0,
        archive__selection="greedy",
    )
    main, greedy = load_run(evo_dir), load_run(greedy_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, plot in PLOTS.items():
        fig = plot([main, greedy] if name in OVERLAYS else [main])
        path = out / f"plot_{name}.png"
        fig.savefig(path, dpi=DPI)
        if path.stat().st_size > MAX_BYTES:
            raise SystemExit(f"{path}: {path.stat().st_size} bytes, over {MAX_BYTES}")
        written[name] = path
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs", help="folder for the images (default docs)")
    p.add_argument("--evaluations", type=int, default=120, help="seed runs per search")
    p.add_argument("--runs-dir", help="keep the two run dirs here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.runs_dir:
        written = make_images(Path(args.out), Path(args.runs_dir), args.evaluations)
    else:
        with tempfile.TemporaryDirectory(prefix="evo-docs-") as tmp:
            written = make_images(Path(args.out), Path(tmp), args.evaluations)
    for path in written.values():
        print(f"{path} ({path.stat().st_size // 1000} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
