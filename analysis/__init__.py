"""analysis: read run dirs (never writing their store), plot, report, ablate.

Example:
    >>> import analysis
    >>> run = analysis.load_run("runs/circle_packing")  # doctest: +SKIP
    >>> figs = analysis.make_figures([run])              # doctest: +SKIP
    >>> rep = analysis.build_report(run)                 # doctest: +SKIP
"""

import importlib
from typing import Any

# Each public name and the submodule that defines it. The submodules are imported on first use
# (PEP 562), so ``evo run``, which needs only ``analysis.cli`` to register its subcommands,
# does not pay for matplotlib and scipy (1.3 s of every ``evo`` process's start-up).
_WHERE = {
    "analysis.ablation": ("Ablation", "Estimate", "ablate", "render_ablation", "write_ablation"),
    "analysis.edits": ("Edit", "EditSet", "edit_set"),
    "analysis.errors": ("AnalysisError",),
    "analysis.metrics": (
        "Diversity",
        "HitRate",
        "OperatorRow",
        "Window",
        "diversity",
        "elite_timeline",
        "hit_rate",
        "lineage",
        "operator_table",
        "saturation",
    ),
    "analysis.plots": ("PLOTS", "make_figures", "write_plots"),
    "analysis.report": ("Report", "build_report", "render_report", "write_report"),
    "analysis.rundata": ("RunData", "load_run"),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE))


__all__ = sorted(_MODULE)  # built from _WHERE, the one list of the public names
