"""evo plot: every PNG is written, has the expected size, is not blank; every axes is
labelled; the figures show what the archive holds; overlays; a live run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from analysis_helpers import QUAD, REPO
from matplotlib.colors import to_rgba
from matplotlib.image import imread

import analysis
from analysis import plots
from archive import RunStore

NAMES = {"heatmap", "frontier", "qd_coverage", "diversity", "operators", "lineage"}


def check_png(path: Path, fig) -> None:
    """Written, the size of its figure, not blank, small enough for the README."""
    assert path.is_file() and 0 < path.stat().st_size < 200_000, path
    img = imread(path)
    w, h = fig.get_size_inches() * plots.DPI
    assert img.shape[:2] == (round(h), round(w)), (path, img.shape)
    assert float(img[..., :3].var()) > 1e-3, f"{path} is blank"


def check_labelled(name: str, fig) -> None:
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes, name
    for ax in axes:
        if ax.axison:
            # panels stacked on a shared x axis carry its label once, under the bottom one
            shared = ax.get_shared_x_axes().get_siblings(ax)
            assert any(a.get_xlabel() for a in shared) and ax.get_ylabel(), (name, ax)
        else:  # a table figure: its title says what it is
            assert ax.get_title(), (name, ax)


def test_every_plot_written_sized_not_blank_and_labelled(cp_run, tmp_path):
    run = analysis.load_run(cp_run.run_dir)
    figs = analysis.make_figures([run])
    assert set(figs) == NAMES
    for name, fig in figs.items():
        check_labelled(name, fig)
    written = analysis.write_plots([cp_run.run_dir], tmp_path / "plots")
    assert set(written) == NAMES
    for name, path in written.items():
        check_png(path, figs[name])


def test_heatmap_shows_every_elite_and_every_empty_cell_in_grey(cp_run):
    run = analysis.load_run(cp_run.run_dir)
    fig = plots.plot_heatmap([run])
    arr = fig.axes[0].images[0].get_array()
    arch = run.store.elites(run.fidelity)
    stats = arch.stats()
    assert arr.shape == arch.shape  # region x edit_size_bin: a 2-D archive, drawn whole
    assert int((~arr.mask).sum()) == stats.elites
    assert int(arr.mask.sum()) == stats.cells - stats.elites > 0
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    cols = [t.get_text() for t in ax.get_xticklabels()]
    for e in arch.cells():  # each elite's fitness sits under its own labels
        i, j = np.unravel_index(e.cell, arch.shape)
        assert arr[i, j] == e.fitness and (rows[i], cols[j]) == e.labels
    # empty cells are drawn opaque grey, not left transparent (white, like the background)
    assert np.allclose(fig.axes[0].images[0].get_cmap().get_bad(), to_rgba(plots.EMPTY))


def test_frontier_has_one_dot_per_evaluation_and_the_archive_best_line(cp_run):
    run = analysis.load_run(cp_run.run_dir)
    ax = plots.plot_frontier([run]).axes[0]
    dots = [c for c in ax.collections if c.get_label() != "entered the archive"]
    assert sum(len(c.get_offsets()) for c in dots) == len(run.history)
    rings = [c for c in ax.collections if c.get_label() == "entered the archive"]
    inserted = sum(h.added in ("new", "improved") for h in run.history)
    assert len(rings[0].get_offsets()) == inserted > 1
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "best so far"]
    assert list(line.get_ydata()) == [h.best for h in run.history]
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"ok", "best so far", "entered the archive"} <= legend


def test_elite_replay_ends_at_the_archive_and_diversity_is_measured(cp_run):
    run = analysis.load_run(cp_run.run_dir)
    final = analysis.elite_timeline(run)[-1]
    assert final == {e.cell: e.id for e in run.store.elites(run.fidelity).cells()}
    div = analysis.diversity(run, points=8)
    assert div.steps[0] == 0 and div.steps[-1] == len(run.history) - 1
    assert div.elites[-1] == len(final)
    assert div.region_entropy[0] == 0.0 and div.distance[0] == 0.0  # the seed alone
    assert div.region_entropy[-1] > 0 and 0 < div.distance[-1] < 1


def test_overlay_of_two_runs_names_both(cp_run, tmp_path):
    other = tmp_path / "baseline"
    shutil.copytree(cp_run.run_dir, other)
    runs = [analysis.load_run(cp_run.run_dir), analysis.load_run(other)]
    for name in ("frontier", "qd_coverage", "diversity"):
        fig = plots.PLOTS[name](runs)
        texts = " ".join(
            t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
        )
        assert "cp_run" in texts and "baseline" in texts, name
    for name in ("heatmap", "operators", "lineage"):  # one panel per run
        titles = [ax.get_title() for ax in plots.PLOTS[name](runs).axes if ax.get_title()]
        assert any(t.startswith("cp_run") for t in titles), name
        assert any(t.startswith("baseline") for t in titles), name


def test_plots_of_a_live_run(tmp_path):
    """A run writing in another process is plotted from a consistent snapshot.

    The run's budget is far more than the test waits for; it is stopped with Ctrl-C once
    plotted, so a slow machine cannot let it end before the plot is taken."""
    run_dir = tmp_path / "live"
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'[run]\ntarget = "{QUAD}"\nrun_dir = "{run_dir}"\nevaluations = 400\n'
        'pass_env = ["BOWL_SLEEP"]\n[backend]\nworkers = 2\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "BOWL_SLEEP": "0.4"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "evo.cli", "run", str(cfg), "--no-progress"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (run_dir / "archive.h5").exists() and len(RunStore.read(run_dir).history) >= 2:
                break
            time.sleep(0.2)
        written = analysis.write_plots([run_dir], tmp_path / "plots")
        assert proc.poll() is None, "the run ended before it could be plotted live"
        assert set(written) == NAMES
        live = len(analysis.load_run(run_dir).history)
        deadline = time.monotonic() + 60  # the run goes on writing after the snapshot
        while time.monotonic() < deadline and len(RunStore.read(run_dir).history) <= live:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # stopped by Ctrl-C, cleanly
    assert 2 <= live < len(analysis.load_run(run_dir).history)
