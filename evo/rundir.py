"""What a run keeps beside its store: opening the run dir, the summary, counters, log file."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive import RunStore
from evo.config import search_changes, tomllib
from operators.llm.client import empty_usage

log = logging.getLogger("evo")


class RunError(ValueError):
    """The run cannot start or cannot go on (bad run dir, seed fails its baseline...)."""


@dataclass
class RunSummary:
    """What a run did, for the CLI's closing table and for scripts.

    ``noise_floor`` is pooled over every program measured more than once (``noise_dof``
    degrees of freedom); ``deterministic`` when they all repeated exactly. ``remeasured``
    counts the runs after each program's first by reason (``baseline``, ``confirm_best``,
    ``within_noise``); ``operator_shares`` are the bandit's current shares; ``emitter`` is
    :func:`evo.emitter.emitter_summary` at the search's level, and ``emitter_off`` why the
    emitter made no child although ``archive.emitter`` > 0 (:func:`evo.emitter.why_off`; ``""``
    when it ran or was set to 0).
    """

    run_dir: Path
    evaluations: int
    by_status: dict[str, int]
    seed_fitness: float | None
    noise_floor: float
    best_id: str | None
    best_fitness: float | None
    best_std: float | None
    improved: bool
    noise_dof: int
    deterministic: bool
    remeasured: dict[str, int]
    operator_shares: dict[str, float]
    elites: int
    coverage: float
    qd_score: float
    gate_rejected: int
    gate_reevaluated: int
    stopped: str
    operators: dict[str, dict[str, int]] = field(default_factory=dict)
    emitter: dict[str, Any] = field(default_factory=dict)
    emitter_off: str = ""
    direction: str = "minimize"
    metric: str = ""
    fidelity: str = ""
    failure_reasons: list[tuple[str, str, int]] = field(default_factory=list)
    """``(status, reason, programs)`` of the failed programs, most common first (top 3:
    :func:`archive.program.failure_reasons`)."""
    pending: list[dict[str, Any]] = field(default_factory=list)
    """Programs left unfinished when the run stopped: ``id``, ``fidelity``, ``runs`` done,
    ``needed`` runs in all, ``first`` (mean metric of the ok runs so far, or None)."""


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; {} when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    d = dict(summary.__dict__)
    d["run_dir"] = str(summary.run_dir)
    return d


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


class FileLog:
    """Attach the run's log file to the ``evo`` logger for the duration of a run."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(path)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self.handler)
        log.setLevel(logging.INFO)

    def close(self) -> None:
        log.removeHandler(self.handler)
        self.handler.close()


def report_fidelity(store: Any) -> str:
    """The level a run's results are reported at: the highest level of its cascade that a
    program other than the seed reached ok (the run's fidelity without a cascade)."""
    levels = store.meta.get("levels") or [store.meta.get("fidelity")]
    seed_id = store.meta.get("seed_id")
    for level in reversed(levels):
        if any(p.fidelity == level and p.ok and p.id != seed_id for p in store.programs.values()):
            return level
    return levels[0]


def open_run_dir(
    d: Path,
    meta: dict[str, Any],
    *,
    dims: list,
    direction: str,
    z: float,
    force_new: bool,
    cfg: dict | None = None,
) -> RunStore:
    """The store of run dir ``d`` for writing: an existing run made with the same ``meta``
    keys that matter is resumed; one made for another target or config is refused (the
    message says what differs: values, files, config keys against the run's config.toml when
    ``cfg`` is given); with ``force_new`` any existing run is moved aside (never deleted) and
    a new one starts; an empty or missing dir gets a new store."""
    if d.exists() and any(d.iterdir()):
        if not ((d / "archive.h5").exists() or (d / "journal").exists()):
            raise RunError(f"{d}: exists and is not an evo run dir; choose another --run-dir")
        store = RunStore.open(d, writer=True)
        old = store.meta
        clash = [
            k
            for k in ("target", "fidelity", "metric", "fingerprint", "checksums")
            if old.get(k) != meta[k]
        ]
        if clash and not force_new:
            store.close()
            what = "; ".join(_differences(d, old, meta, cfg, clash))
            raise RunError(
                f"{d}: made for another target or config ({what}); "
                "use another --run-dir, or --force-new to start over "
                "(the old run is kept beside it)"
            )
        if not clash and not force_new:
            return store
        store.close()
        aside = d.with_name(f"{d.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        d.rename(aside)
        log.warning("moved the old run dir to %s", aside)
    return RunStore.create(d, dims=dims, direction=direction, z=z, meta=meta)


def _differences(
    d: Path, old: dict[str, Any], meta: dict[str, Any], cfg: dict | None, clash: list[str]
) -> list[str]:
    """What differs between a run dir's meta and a new run's, in words."""
    out = []
    for k in clash:
        if k == "checksums":
            a, b = old.get(k) or {}, meta[k]
            files = sorted(f for f in a.keys() | b.keys() if a.get(f) != b.get(f))
            out.append(f"target files changed since: {', '.join(files)}")
        elif k == "fingerprint":
            changes = []
            if cfg is not None and (d / "config.toml").is_file():
                try:  # the run's resolved config, unless someone edited it out of shape
                    before = tomllib.loads((d / "config.toml").read_text(encoding="utf-8"))
                    changes = search_changes(before, cfg)
                except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError, TypeError):
                    changes = []
            if changes:
                shown = ", ".join(changes[:4]) + (
                    f" and {len(changes) - 4} more" if len(changes) > 4 else ""
                )
                out.append(f"search config differs: {shown}")
            else:
                out.append("search config differs")
        else:
            out.append(f"{k} {old.get(k)!r} -> {meta[k]!r}")
    return out


def save_counters(
    run_dir: Path,
    op_stats: dict[str, Counter],
    gates: dict[str, Any],
    base: str,
    failed_cost: float,
    llm_usage: dict,
    policy: Any = None,
    emitter_off: str = "",
) -> None:
    """operators.json (per-operator counts) and counters.json (noise-gate counts per cascade
    level, the search's own ``base`` level at the top; LLM usage, failed-proposal cost, the
    bandit's operator shares, the ``constants`` step scale and ``emitter_off``, why the
    climbing emitter does not run: :func:`evo.emitter.why_off`). The gate counts and the
    policy are rebuilt from the store on resume; they are written here for readers of the run
    dir (``evo status``)."""
    write_json(run_dir / "operators.json", {k: dict(v) for k, v in sorted(op_stats.items())})
    levels = {
        lvl: {
            "gate_rejected": g.rejected,
            "gate_reevaluated": g.reevaluated,
            "gated": sorted(g.gated),
        }
        for lvl, g in gates.items()
    }
    write_json(
        run_dir / "counters.json",
        {
            **levels[base],
            "levels": levels,
            "failed_proposal_cost": failed_cost,
            "llm_usage": llm_usage,
            "operator_shares": policy.shares() if policy is not None else {},
            "step_scales": dict(policy.steps) if policy is not None else {},
            "emitter_off": emitter_off,
        },
    )


def merge_usage(before: dict, now: dict) -> dict:
    """LLM usage of earlier processes of a run plus this one's (per model: counts, tokens and
    dollars add up, failures and their cost per kind too)."""
    out = {
        m: {
            **u,
            "failures": dict(u.get("failures") or {}),
            "failure_cost": dict(u.get("failure_cost") or {}),
        }
        for m, u in before.items()
    }
    for model, u in now.items():
        o = out.setdefault(model, empty_usage())
        for key in ("requests", "input_tokens", "output_tokens", "cost"):
            o[key] = o.get(key, 0) + u.get(key, 0)
        for key in ("failures", "failure_cost"):
            for kind, v in (u.get(key) or {}).items():
                o[key][kind] = o[key].get(kind, 0) + v
    return out


def load_counters(run_dir: Path, op_stats: dict[str, Counter]) -> tuple[float, dict]:
    """Restore the per-operator counts :func:`save_counters` wrote into ``op_stats``; returns
    the failed-proposal cost (dollars) and the LLM usage of the run's earlier processes. These
    counters are not evaluations: a crash may lose the last few (the noise gate's and the
    policy's state come from the store instead)."""
    for name, counts in read_json(run_dir / "operators.json").items():
        op_stats.setdefault(name, Counter()).update(counts)
    counters = read_json(run_dir / "counters.json")
    return counters.get("failed_proposal_cost", 0.0), counters.get("llm_usage") or {}
