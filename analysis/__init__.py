"""analysis: read run dirs (never writing their store), plot, report, ablate.

Example:
    >>> import analysis
    >>> run = analysis.load_run("runs/circle_packing")  # doctest: +SKIP
    >>> figs = analysis.make_figures([run])              # doctest: +SKIP
    >>> rep = analysis.build_report(run)                 # doctest: +SKIP
"""

from analysis.ablation import Ablation, Estimate, ablate, render_ablation, write_ablation
from analysis.edits import Edit, EditSet, edit_set
from analysis.errors import AnalysisError
from analysis.metrics import (
    Diversity,
    HitRate,
    OperatorRow,
    Window,
    diversity,
    elite_timeline,
    hit_rate,
    lineage,
    operator_table,
    saturation,
)
from analysis.plots import PLOTS, make_figures, write_plots
from analysis.report import Report, build_report, render_report, write_report
from analysis.rundata import RunData, load_run

__all__ = [
    "PLOTS",
    "Ablation",
    "AnalysisError",
    "Diversity",
    "Edit",
    "EditSet",
    "Estimate",
    "HitRate",
    "OperatorRow",
    "Report",
    "RunData",
    "Window",
    "ablate",
    "build_report",
    "diversity",
    "edit_set",
    "elite_timeline",
    "hit_rate",
    "lineage",
    "load_run",
    "make_figures",
    "operator_table",
    "render_ablation",
    "render_report",
    "saturation",
    "write_ablation",
    "write_plots",
    "write_report",
]
