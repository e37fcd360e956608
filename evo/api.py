"""Run a search from a script: ``evo.run(...)``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from evo.loop import Search
from evo.rundir import RunSummary


def run(
    config: str | Path | dict | None = None,
    *,
    force_new: bool = False,
    progress: bool = False,
    **overrides: Any,
) -> RunSummary:
    """Run a search from a script.

    Args:
        config: a run.toml path, a resolved config dict, or None for the defaults.
        force_new: start over: an existing run in the run dir is moved aside (``NAME.old-DATE``).
        progress: show the live progress display.
        **overrides: ``section__key=value`` (e.g. ``noise__seeds=5``,
            ``ranges__LR=[1e-4, 0.1]``), or the short names ``target``, ``run_dir``,
            ``evaluations``, ``hours``, ``workers``, ``fidelity``, ``timeout``, ``seed``.

    Example:
        >>> import evo
        >>> summary = evo.run(target="circle_packing", evaluations=20)  # doctest: +SKIP
    """
    from evo.config import apply_overrides, load_config, validate

    short = {"workers": "backend.workers"}
    dotted = {}
    for k, v in overrides.items():
        if k in short:
            dotted[short[k]] = v
        elif "__" in k:
            dotted[k.replace("__", ".", 1)] = v
        else:
            dotted[f"run.{k}"] = v
    if isinstance(config, dict):  # the caller's dict is left as it is
        cfg = copy.deepcopy(config)
        apply_overrides(cfg, dotted)
        validate(cfg)
    else:
        cfg = load_config(config, dotted)
    return Search(cfg, force_new=force_new, progress=progress).run()
