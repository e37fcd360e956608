"""The plots of one run or an overlay of several: each function returns a matplotlib Figure.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``), never pyplot,
so plotting leaves no global state behind, works without a display, and a notebook can show
the very objects the files are written from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis import metrics, transfer
from analysis.errors import AnalysisError
from analysis.rundata import RunData, load_run

DPI = 100
WIDTH = 8.0  # inches; 800 px at DPI
STATUS_COLORS = {
    "ok": "#1f77b4",
    "crash": "#d62728",
    "timeout": "#ff7f0e",
    "oom": "#9467bd",
    "nan": "#8c564b",
    "invalid_result": "#e377c2",
    "duplicate": "#7f7f7f",
    "rejected": "#000000",
}
RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf")
EMPTY = "#e6e6e6"


def _color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


def _figure(height: float) -> Figure:
    return Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")


def _metric_label(run: RunData) -> str:
    return f"{run.metric} ({run.direction})"


# ---- archive heatmap ------------------------------------------------------------------------


def _grid(run: RunData) -> tuple[np.ndarray, list[str], list[str], str, str, str]:
    """Fitness of the best elite per (dim0, dim1) cell, NaN where empty; more dims are
    collapsed onto the first two by keeping the best elite."""
    arch = run.store.elites(run.fidelity)
    dims = arch.dims
    shape = arch.shape
    rows_l = dims[0].labels() if dims[0].kind != "cvt" else [f"c{i}" for i in range(shape[0])]
    cols_l = dims[1].labels() if len(dims) > 1 else [""]
    grid = np.full((len(rows_l), len(cols_l)), np.nan)
    pick = np.nanmax if run.maximize else np.nanmin
    for e in arch.cells():
        idx = (e.cell,) if arch.mode == "cvt" else np.unravel_index(e.cell, shape)
        i, j = int(idx[0]), int(idx[1]) if len(idx) > 1 else 0
        grid[i, j] = e.fitness if np.isnan(grid[i, j]) else pick([grid[i, j], e.fitness])
    note = f" (best over {', '.join(d.name for d in dims[2:])})" if len(dims) > 2 else ""
    return grid, rows_l, cols_l, dims[0].name, dims[1].name if len(dims) > 1 else "", note


def plot_heatmap(runs: Sequence[RunData]) -> Figure:
    """The archive of each run as a 2-D grid: colour = the elite's fitness, grey = empty."""
    grids = [_grid(r) for r in runs]
    heights = [min(9.0, max(2.2, 0.32 * len(g[1]) + 1.4)) for g in grids]
    fig = _figure(sum(heights))
    axes = fig.subplots(len(runs), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, run, (grid, rows_l, cols_l, name0, name1, note) in zip(axes, runs, grids, strict=True):
        cmap = _cmap("viridis" if run.maximize else "viridis_r")
        masked = np.ma.masked_invalid(grid)
        im = ax.imshow(masked, cmap=cmap, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(cols_l)), cols_l, fontsize=7, rotation=30 if len(cols_l) > 6 else 0)
        ax.set_yticks(range(len(rows_l)), rows_l, fontsize=7)
        ax.set_xticks(np.arange(-0.5, len(cols_l)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(rows_l)), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.0)
        ax.tick_params(which="minor", length=0)
        ax.set_xlabel(name1 or "(one dim)")
        ax.set_ylabel(name0)
        filled = int(np.isfinite(grid).sum())
        ax.set_title(
            f"{run.name}: archive, {filled} of {grid.size} cells filled{note}", fontsize=10
        )
        if grid.size <= 160:
            for (i, j), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(
                        j,
                        i,
                        f"{v:.3g}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if _dark(cmap, masked, v) else "black",
                    )
        best = run.best
        if best is not None:
            arch = run.store.elites(run.fidelity)
            cell = arch.cell_of_elite(best.id)
            if cell is not None and arch.mode != "cvt":
                idx = np.unravel_index(cell, arch.shape)
                ax.add_patch(_box(int(idx[1]) if len(idx) > 1 else 0, int(idx[0])))
        fig.colorbar(im, ax=ax, label=_metric_label(run), shrink=0.9)
    return fig


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=EMPTY)  # empty cells: grey squares


def _dark(cmap, masked: np.ma.MaskedArray, v: float) -> bool:
    lo, hi = float(masked.min()), float(masked.max())
    t = 0.5 if hi == lo else (v - lo) / (hi - lo)
    r, g, b, _ = cmap(t)
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


def _box(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)


# ---- fitness frontier -------------------------------------------------------------------


def plot_frontier(runs: Sequence[RunData]) -> Figure:
    """Every evaluation as a dot (colour = status; failures as crosses along the bottom),
    the best-so-far line, and rings on the evaluations that entered the archive."""
    fig = _figure(4.8)
    ax = fig.add_subplot()
    single = len(runs) == 1
    ok_values = [h.fitness for r in runs for h in r.history if h.fitness is not None]
    lo, hi = (min(ok_values), max(ok_values)) if ok_values else (0.0, 1.0)
    span = (hi - lo) or max(abs(hi), 1.0) * 0.1
    floor_y = lo - 0.08 * span if runs[0].maximize else hi + 0.08 * span
    seen: set[str] = set()
    for k, run in enumerate(runs):
        xs = np.arange(len(run.history))
        fit = np.array([_fitness(run, h) for h in run.history])
        status = [h.status for h in run.history]
        for st in dict.fromkeys(status):
            m = np.array([s == st for s in status])
            color = STATUS_COLORS.get(st, "#333333") if single else _color(k)
            label = (
                (st if single else f"{run.name}: {st}") if st not in seen or not single else None
            )
            seen.add(st)
            if st in ("ok", "rejected"):  # rejected by the noise gate: it has a fitness
                ax.scatter(
                    xs[m],
                    fit[m],
                    s=14 if st == "ok" else 22,
                    color=color,
                    alpha=0.7,
                    label=label,
                    zorder=2,
                    marker="o" if st == "ok" else "x",
                )
            else:
                ax.scatter(
                    xs[m],
                    np.full(m.sum(), floor_y),
                    s=22,
                    marker="x",
                    color=STATUS_COLORS.get(st, "#333333"),
                    label=label,
                    zorder=2,
                )
        ins = np.array([h.added in metrics.INSERTED for h in run.history])
        ax.scatter(
            xs[ins],
            fit[ins],
            s=60,
            facecolors="none",
            edgecolors="black",
            linewidths=0.8,
            label="entered the archive" if k == 0 else None,
            zorder=3,
        )
        best = np.array([np.nan if h.best is None else h.best for h in run.history])
        ax.step(
            xs,
            best,
            where="post",
            color="black" if single else _color(k),
            linewidth=1.8,
            label="best so far" if single else f"{run.name}: best so far",
            zorder=4,
        )
    ax.set_xlabel(
        "evaluation (finished programs, in order); crosses on the worst edge: failed, no fitness"
    )
    ax.set_ylabel(_metric_label(runs[0]))
    ax.set_title("fitness frontier" + ("" if single else ": " + " vs ".join(r.name for r in runs)))
    ax.legend(fontsize=7, loc="best", ncol=2 if len(seen) > 4 or not single else 1)
    ax.grid(alpha=0.3)
    return fig


def _fitness(run: RunData, h) -> float:
    if h.fitness is not None:
        return h.fitness
    p = run.program(h.id) if h.status == "rejected" else None
    return p.fitness if p is not None and p.fitness is not None else np.nan


# ---- QD-score and coverage ------------------------------------------------------------------


def plot_qd_coverage(runs: Sequence[RunData]) -> Figure:
    """QD-score and coverage of the archive after each evaluation."""
    fig = _figure(5.2)
    ax_qd, ax_cov = fig.subplots(2, 1, sharex=True)
    for k, run in enumerate(runs):
        xs = np.arange(len(run.history))
        ax_qd.plot(xs, [h.qd_score for h in run.history], color=_color(k), label=run.name)
        ax_cov.plot(xs, [100 * h.coverage for h in run.history], color=_color(k), label=run.name)
    ax_qd.set_ylabel("QD-score")
    ax_qd.set_title("QD-score and coverage over evaluations")
    ax_cov.set_ylabel("coverage (% of cells)")
    ax_cov.set_xlabel("evaluation (finished programs, in order)")
    for ax in (ax_qd, ax_cov):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return fig


# ---- diversity ------------------------------------------------------------------------------


def plot_diversity(runs: Sequence[RunData]) -> Figure:
    """Entropy of the elites' edited regions and their mean pairwise code distance."""
    divs = [metrics.diversity(r) for r in runs]
    fig = _figure(5.2)
    ax_h, ax_d = fig.subplots(2, 1, sharex=True)
    for k, (run, d) in enumerate(zip(runs, divs, strict=True)):
        ax_h.plot(d.steps, d.region_entropy, marker=".", color=_color(k), label=run.name)
        ax_d.plot(d.steps, d.distance, marker=".", color=_color(k), label=run.name)
    ax_h.set_ylabel("region entropy (bits)")
    ax_h.set_title("diversity of the elites over evaluations")
    ax_d.set_ylabel("mean pairwise distance\n(1 - difflib ratio, canonical code)")
    ax_d.set_xlabel("evaluation (finished programs, in order)")
    for ax in (ax_h, ax_d):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_ylim(bottom=0)
    return fig


# ---- operator table -------------------------------------------------------------------------

OPERATOR_COLUMNS = (
    "share",
    "evaluated",
    "ok",
    "new\ncell",
    "improved\ncell",
    "gate\nrejected",
    "failures",
    "duplicates",
    "no child",
    "invalid",
)


def operator_cells(rows: Sequence[metrics.OperatorRow]) -> list[list[str]]:
    """The operator table as text cells, in :data:`OPERATOR_COLUMNS` order."""

    def n(v: int | None) -> str:
        return "n/a" if v is None else str(v)

    return [
        [
            r.operator,
            "-" if r.share is None else f"{r.share:.0%}",
            str(r.evaluated),
            str(r.ok),
            str(r.new),
            str(r.improved),
            str(r.gate_rejected),
            str(r.failures),
            n(r.duplicates),
            n(r.no_child),
            n(r.invalid),
        ]
        for r in rows
    ]


def plot_operators(runs: Sequence[RunData]) -> Figure:
    """One table per run: what each operator's children did."""
    tables = [metrics.operator_table(r) for r in runs]
    heights = [0.45 + 0.3 * (len(t) + 1.8) for t in tables]
    fig = _figure(sum(heights))
    axes = fig.subplots(len(runs), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, run, rows in zip(axes, runs, tables, strict=True):
        ax.axis("off")
        cells = operator_cells(rows)
        widths = [0.19] + [0.81 / len(OPERATOR_COLUMNS)] * len(OPERATOR_COLUMNS)
        table = ax.table(
            cellText=cells,
            colLabels=("operator",) + OPERATOR_COLUMNS,
            cellLoc="center",
            colWidths=widths,
            bbox=(0, 0, 1, 1),
        )
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        for (r, _), cell in table.get_celld().items():
            if r == 0:
                cell.set_facecolor("#dde6f0")
                cell.set_text_props(fontweight="bold")
        note = "" if run.operators is not None else " (no operators.json: duplicates n/a)"
        ax.set_title(f"{run.name}: operators{note}", fontsize=10)
    return fig


# ---- lineage --------------------------------------------------------------------------------


def plot_lineage(runs: Sequence[RunData]) -> Figure:
    """The ancestry of each run's best program: birth against fitness, parent -> child edges;
    the first-parent line from the seed is labelled with each step's edit."""
    fig = _figure(4.6 * len(runs))
    axes = fig.subplots(len(runs), 1, squeeze=False)[:, 0]
    for ax, run in zip(axes, runs, strict=True):
        best = run.best
        ax.set_xlabel("birth (proposal order)")
        ax.set_ylabel(_metric_label(run))
        ax.grid(alpha=0.3)
        if best is None:
            ax.set_title(f"{run.name}: no ok program yet, no lineage", fontsize=10)
            continue
        nodes = {p.id: p for p in metrics.lineage(run, best)}
        chain = metrics.main_line(run, best)
        on_chain = {p.id for p in chain}
        oks = [p.fitness for p in nodes.values() if p.fitness is not None]
        bottom = min(oks) if run.maximize else max(oks)
        ys = {p.id: p.fitness if p.fitness is not None else bottom for p in nodes.values()}
        for p in nodes.values():
            for parent in p.parents:
                q = nodes.get(parent)
                if q is not None:
                    main = p.id in on_chain and q.id in on_chain
                    ax.plot(
                        [q.birth, p.birth],
                        [ys[q.id], ys[p.id]],
                        color="black" if main else "#999999",
                        linewidth=1.6 if main else 0.8,
                        zorder=1,
                    )
        for p in nodes.values():
            ax.scatter(
                [p.birth],
                [ys[p.id]],
                s=40 if p.id in on_chain else 18,
                zorder=2,
                color=STATUS_COLORS.get(p.status, "#333333"),
                edgecolors="black" if p.id == best.id else "none",
            )
        step = max(1, math.ceil(len(chain) / 10))  # at most ~10 labels stay readable
        last = max(p.birth for p in nodes.values()) or 1
        for i, p in enumerate(chain):
            if i % step and p is not chain[-1]:
                continue
            text = p.operator if p.operator == "seed" else f"{p.operator}: {_short(p.description)}"
            right = p.birth > last / 2  # labels on the right half grow leftwards: no clipping
            ax.annotate(
                text,
                (p.birth, ys[p.id]),
                xytext=(-4 if right else 4, 4),
                textcoords="offset points",
                fontsize=6.5,
                ha="right" if right else "left",
            )
        ax.set_title(
            f"{run.name}: lineage of the best ({best.id[:10]}, {len(chain) - 1} "
            f"step{'' if len(chain) == 2 else 's'} from the seed, {len(nodes) - 1} "
            f"ancestor{'' if len(nodes) == 2 else 's'})",
            fontsize=10,
        )
    return fig


def _short(text: str, n: int = 42) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# ---- writing ---------------------------------------------------------------------------------

PLOTS: dict[str, Callable[[Sequence[RunData]], Figure]] = {
    "heatmap": plot_heatmap,
    "frontier": plot_frontier,
    "qd_coverage": plot_qd_coverage,
    "diversity": plot_diversity,
    "operators": plot_operators,
    "lineage": plot_lineage,
}
"""Every plot, by the stem of its file name."""


def make_figures(runs: Sequence[RunData]) -> dict[str, Figure]:
    """Every figure of :data:`PLOTS` for ``runs`` (one run, or several overlaid)."""
    if not runs:
        raise AnalysisError("no run dir given; name at least one")
    figures = {name: fn(runs) for name, fn in PLOTS.items()}
    if len(transfer.levels(runs[0])) > 1:  # a cascade: how rankings carry between levels
        figures["transfer"] = transfer.plot_transfer(list(runs))
    return figures


def write_plots(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> dict[str, Path]:
    """Write every plot of the runs as PNG files.

    Args:
        run_dirs: one run dir, or several to overlay.
        out: the folder for the files; default ``RUN_DIR/plots`` of the first run.

    Returns:
        Plot name -> path written.

    Raises:
        AnalysisError: a run dir is missing, empty, damaged or of a newer schema.
    """
    runs = [load_run(d) for d in run_dirs]
    if not runs:
        raise AnalysisError("no run dir given; name at least one")
    folder = Path(out) if out is not None else runs[0].run_dir / "plots"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AnalysisError(
            f"{folder}: cannot create the output folder ({e.strerror}); choose another --out"
        ) from None
    written = {}
    for name, fig in make_figures(runs).items():
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=DPI)
        written[name] = path
    return written
