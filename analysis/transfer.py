"""Do small-scale wins transfer? Rank correlation and surviving improvements between levels.

For a cascade run, every program evaluated at two adjacent levels gives a pair of fitnesses.
The Spearman rank correlation of those pairs (with a bootstrap interval) says whether the cheap
level ranks programs the way the expensive one does; the list of improvements says which wins
over the seed at the lower level are still wins at the higher one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from analysis.rundata import RunData

BOOTSTRAP = 2000


@dataclass(frozen=True)
class Survivor:
    """A program that beat the seed at the lower level, and how it did one level up."""

    id: str
    description: str
    gain_low: float  # improvement over the seed at the lower level (positive = better)
    gain_high: float  # the same at the higher level
    survived: bool


@dataclass(frozen=True)
class Transfer:
    """Transfer from level ``low`` to level ``high``."""

    low: str
    high: str
    pairs: list[tuple[str, float, float]]  # (id, fitness low, fitness high)
    spearman: float | None  # None with fewer than 3 pairs or no variation
    interval: tuple[float, float] | None  # 95% bootstrap interval
    survivors: list[Survivor]


def levels(run: RunData) -> list[str]:
    return list(run.store.meta.get("levels") or [run.fidelity])


def transfers(run: RunData, seed: int = 0) -> list[Transfer]:
    """One :class:`Transfer` per pair of adjacent levels of the run's cascade."""
    lv = levels(run)
    return [transfer(run, lo, hi, seed) for lo, hi in zip(lv, lv[1:], strict=False)]


def transfer(run: RunData, low: str, high: str, seed: int = 0) -> Transfer:
    progs = run.store.programs
    pairs = sorted(
        (pid, p.fitness, progs[(pid, high)].fitness)
        for (pid, fid), p in progs.items()
        if fid == low and p.ok and (pid, high) in progs and progs[(pid, high)].ok
    )
    rho, interval = None, None
    if len(pairs) >= 3:
        lo = np.array([a for _, a, _ in pairs])
        hi = np.array([b for _, _, b in pairs])
        rho, interval = _spearman(lo, hi, np.random.default_rng(seed))
    sign = 1.0 if run.maximize else -1.0
    seed_lo, seed_hi = progs.get((run.seed_id, low)), progs.get((run.seed_id, high))
    survivors = []
    if seed_lo is not None and seed_hi is not None and seed_lo.ok and seed_hi.ok:
        for pid, a, b in pairs:
            gain_low = sign * (a - seed_lo.fitness)
            if pid == run.seed_id or gain_low <= 0:
                continue
            gain_high = sign * (b - seed_hi.fitness)
            survivors.append(
                Survivor(pid, progs[(pid, low)].description, gain_low, gain_high, gain_high > 0)
            )
    return Transfer(low, high, pairs, rho, interval, survivors)


def _spearman(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator
) -> tuple[float | None, tuple[float, float] | None]:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, None
    rho = round(float(spearmanr(a, b).statistic), 12)  # 1.0, not 0.9999999999999999
    samples = []
    n = len(a)
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, n, n)
        x, y = a[idx], b[idx]
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            samples.append(spearmanr(x, y).statistic)
    if not samples:
        return rho, None
    lo, hi = np.round(np.nanpercentile(samples, [2.5, 97.5]), 12)
    # a percentile interval can miss its own estimate when few pairs tie; it never should
    return rho, (min(float(lo), rho), max(float(hi), rho))


def render_transfers(ts: list[Transfer]) -> list[str]:
    """The report's section on transfer between levels (empty without a cascade)."""
    if not ts:
        return []
    m = ["## Transfer between levels", ""]
    for t in ts:
        if t.spearman is None:
            corr = f"too few programs at both levels to rank ({len(t.pairs)})"
        else:
            ci = (
                f" (95% bootstrap interval {t.interval[0]:.2f} to {t.interval[1]:.2f})"
                if t.interval
                else ""
            )
            corr = f"Spearman rank correlation **{t.spearman:.2f}**{ci}"
        m += [f"`{t.low}` -> `{t.high}`: {len(t.pairs)} programs evaluated at both; {corr}.", ""]
        if t.survivors:
            kept = sum(s.survived for s in t.survivors)
            m += [
                f"{kept} of {len(t.survivors)} improvements over the seed at `{t.low}` "
                f"survived promotion to `{t.high}`.",
                "",
                f"| program | edit | gain at {t.low} | gain at {t.high} | survived |",
                "| --- | --- | --- | --- | --- |",
            ]
            m += [
                f"| `{s.id[:12]}` | {s.description[:60].replace('|', '/')} | "
                f"{s.gain_low:+.4g} | {s.gain_high:+.4g} | {'yes' if s.survived else 'no'} |"
                for s in t.survivors
            ]
            m.append("")
    return m


def plot_transfer(runs: list[RunData]) -> Figure:
    """Fitness at each level against the level above, one panel per adjacent pair."""
    run = runs[0]
    ts = transfers(run)
    fig = Figure(figsize=(5.0 * max(1, len(ts)), 4.2), dpi=100)
    if not ts:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no cascade: one level only", ha="center", va="center")
        ax.set_xlabel(f"{run.metric} at the lower level")
        ax.set_ylabel(f"{run.metric} at the higher level")
        ax.set_title("transfer between levels")
        return fig
    for i, t in enumerate(ts):
        ax = fig.add_subplot(1, len(ts), i + 1)
        xs = [a for _, a, _ in t.pairs]
        ys = [b for _, _, b in t.pairs]
        ax.scatter(xs, ys, s=24, color="tab:blue", label="program")
        seeds = [(a, b) for pid, a, b in t.pairs if pid == run.seed_id]
        if seeds:
            ax.scatter(
                *zip(*seeds, strict=True), s=60, color="tab:orange", marker="*", label="seed"
            )
        rho = "-" if t.spearman is None else f"{t.spearman:.2f}"
        ax.set_title(f"{t.low} -> {t.high}: Spearman {rho}")
        ax.set_xlabel(f"{run.metric} at {t.low}")
        ax.set_ylabel(f"{run.metric} at {t.high}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
