"""The live progress line of a run (rich), and its closing summary table."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from archive import FAILED
from evo.config import DEFAULTS
from evo.emitter import emitter_line

if TYPE_CHECKING:
    from evo.loop import Search
    from evo.rundir import RunSummary


class PlainTable(Table):
    """A rich Table whose string cells are shown as written, never read as console markup: a
    failure reason from a child's stderr, a run dir's name or a config key can hold ``[...]``,
    which rich would drop as a style tag or reject (``[/x]``: ``MarkupError``, a crash).

    Example:
        >>> t = PlainTable(show_header=False)
        >>> t.add_row("reason", "KeyError [/bold] in [descriptors]")
        >>> import io
        >>> out = io.StringIO()
        >>> Console(file=out, width=60).print(t)
        >>> "KeyError [/bold] in [descriptors]" in out.getvalue()
        True
    """

    def __init__(self, *args: Any, title: str | None = None, **kwargs: Any):
        super().__init__(*args, title=None if title is None else Text(title), **kwargs)

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)


class Progress:
    """Done, in flight, best, coverage, failures and ETA, redrawn as results arrive."""

    def __init__(self, search: Search, budget: int, slots: int, enabled: bool = True):
        self.search, self.budget, self.slots = search, budget, slots
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.live: Live | None = None
        self.t0 = time.monotonic()
        self.done0: int | None = None
        self._last = 0.0

    def start(self) -> None:
        if self.enabled:
            self.live = Live(
                self._render(0), console=self.console, refresh_per_second=4, transient=False
            )
            self.live.start()

    def update(self, in_flight: int) -> None:
        if self.live is None or time.monotonic() - self._last < 0.2:
            return
        self._last = time.monotonic()
        self.live.update(self._render(in_flight))

    def stop(self) -> None:
        if self.live is not None:
            self.live.update(self._render(0))
            self.live.stop()
            self.live = None

    def _render(self, in_flight: int) -> Table:
        s = self.search
        store = getattr(s, "store", None)
        done = s._evaluations(store) if store else 0
        if self.done0 is None:
            self.done0 = done
        best = store.best(s.fidelity) if store else None
        stats = store.elites(s.fidelity).stats() if store else None
        counts = store.counts_by_status() if store else {}
        failed = sum(counts.get(k, 0) for k in FAILED)
        elapsed = time.monotonic() - self.t0
        rate = (done - self.done0) / elapsed if elapsed > 0 else 0.0
        eta = (self.budget - done) / rate if rate > 0 else float("nan")
        t = Table.grid(padding=(0, 2))
        cells = [
            f"[bold]{escape(s.target.name)}[/] {escape(s.fidelity)}",
            f"done {done}/{self.budget}",
            f"in flight {in_flight}/{self.slots}",
            f"best {s.target.metric} {_fmt(best.fitness if best else None)}",
            f"coverage {stats.coverage:.1%}" if stats else "",
            f"failures {failed}",
            f"ETA {_duration(eta)}",
        ]
        wait, kind = s.proposer.backoff()
        if wait > 0:
            cells.append(f"[yellow]LLM backing off {wait:.0f} s ({escape(kind)})[/]")
        t.add_row(*cells)
        return t


def summary_table(summary: RunSummary) -> Table:
    """The closing table of ``evo run``."""
    t = PlainTable(title=f"evo run: {summary.run_dir}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("stopped", summary.stopped)
    t.add_row("evaluations", str(summary.evaluations))
    t.add_row(
        "programs by status",
        ", ".join(f"{k} {v}" for k, v in sorted(summary.by_status.items()))
        + " (evaluations count runs: a program measured k times counts k)",
    )
    add_failure_rows(t, summary.failure_reasons)
    t.add_row("elites / coverage", f"{summary.elites} / {summary.coverage:.1%}")
    t.add_row("QD-score", f"{summary.qd_score:.6g}")
    t.add_row("fidelity", summary.fidelity)
    t.add_row(f"seed {summary.metric}", _fmt(summary.seed_fitness))
    t.add_row("noise floor (1 eval)", noise_line(summary))
    t.add_row("re-measurement runs", remeasured_line(summary.remeasured))
    t.add_row(
        f"best {summary.metric} ± std. error",
        f"{_fmt(summary.best_fitness)} ± {_fmt(summary.best_std)}"
        f" ({(summary.best_id or '-')[:12]})",
    )
    t.add_row(
        "noise gate",
        f"{summary.gate_reevaluated} re-evaluated, "
        f"{summary.gate_rejected} would-be elites rejected",
    )
    shares = summary.operator_shares
    for op in sorted(set(summary.operators) | set(shares), key=lambda op: (op != "seed", op)):
        counts = summary.operators.get(op, {})
        share = f"share {shares[op]:.0%}; " if op in shares else ""
        label = {"seed": "seed program", "hand": "hand-written variants"}.get(op, f"operator {op}")
        t.add_row(label, share + operator_line(counts))
    if line := emitter_line(summary.emitter, summary.best_id, summary.emitter_off):
        t.add_row("climbing emitter", line)
    return t


def operator_line(counts: dict[str, int]) -> str:
    """An operator's counts (``operators.json``) in words, in a child's order: evaluated (and
    how many of those failed), entered the archive, then what never cost a run.

    Example:
        >>> operator_line({"evaluated": 25, "crash": 2, "new": 2, "improved": 5,
        ...                "duplicate": 22, "no_child": 5, "rejected_syntax": 1})
        "25 evaluated (2 crash), 2 took an empty cell, 5 beat a cell's elite; not run: 22 duplicates, 5 proposals that made no child, 1 rejected by the checks (syntax)"
    """
    c = dict(counts)
    n = c.pop("evaluated", 0)
    failed = ", ".join(f"{c.pop(k)} {k}" for k in FAILED if c.get(k))
    if n:
        done = [f"{n} evaluated" + (f" ({failed})" if failed else "")]
    else:  # the seed and hand-written variants have no "evaluated" count
        done = [failed] if failed else []
    for key, words in (("new", "took an empty cell"), ("improved", "beat a cell's elite")):
        if k := c.pop(key, 0):
            done.append(f"{k} {words}")
    for key in sorted(k for k in c if k.startswith("promoted_to_")):
        done.append(f"{c.pop(key)} promoted to {key.removeprefix('promoted_to_')}")
    missed = [f"{c[key]} {_missed_words(key, c[key])}" for key in sorted(c)]
    out = ", ".join(done) or "none evaluated"
    return out + (f"; not run: {', '.join(missed)}" if missed else "")


def _missed_words(key: str, n: int) -> str:
    """What a counter of children that never ran is called, for ``n`` of them."""
    plural = "" if n == 1 else "s"
    for prefix, words in (
        ("no_child", f"proposal{plural} that made no child"),
        ("rejected", "rejected by the checks"),
    ):
        if key.startswith(prefix):
            kind = key.removeprefix(prefix).lstrip("_")
            return words + (f" ({kind})" if kind else "")
    # an unknown key (a run dir written by another version) is shown as it is
    return {"duplicate": f"duplicate{plural}", "error": f"operator error{plural}"}.get(key, key)


def add_failure_rows(t: Table, reasons: list[tuple[str, str, int]]) -> None:
    """One row per ``(status, reason, programs)`` of
    :func:`archive.program.failure_reasons`: the closing table's and ``evo status``'s."""
    for status, reason, n in reasons:
        t.add_row(f"  {status} x{n}", reason[:300] or "-")


def noise_line(summary: RunSummary) -> str:
    """The noise floor and where it comes from."""
    if summary.deterministic:
        return "0 (deterministic: the seed's runs repeated exactly; no child is measured twice)"
    if not summary.noise_dof:
        return "unknown (no program measured twice yet)"
    return f"{_fmt(summary.noise_floor)} (pooled, {summary.noise_dof} degrees of freedom)"


def remeasured_line(remeasured: dict[str, int]) -> str:
    """Runs after each program's first, by reason."""
    total = sum(remeasured.values())
    if not total:
        return "0"
    why = ", ".join(f"{REASONS.get(k, k)} {v}" for k, v in sorted(remeasured.items()))
    return f"{total} ({why})"


REASONS = {
    "baseline": "seed baseline",
    "confirm_best": "confirming a would-be best",
    "within_noise": "margin within the noise",
    "earlier": "reason not recorded",
}


def verdict(summary: RunSummary) -> str:
    """One plain sentence: did anything beat the seed, by how much, against the noise? Then,
    when the run stopped with programs unfinished, which ones and what they still need."""
    pending = pending_line(summary)
    return _verdict(summary) + (f"\n{pending.strip()}" if pending else "")


def pending_line(summary: RunSummary, show: int = 3) -> str:
    """`` N programs left unfinished: ID (1 of 3 runs, metric so far X), ...``, or ``""``."""
    left = summary.pending
    if not left:
        return ""
    parts = []
    for d in left[:show]:
        so_far = f", {summary.metric} so far {_fmt(d['first'])}" if d["first"] is not None else ""
        parts.append(f"{d['id'][:12]} ({d['runs']} of {d['needed']} runs{so_far})")
    more = f" and {len(left) - show} more" if len(left) > show else ""
    need = sum(d["needed"] - d["runs"] for d in left)
    return (
        f" {len(left)} program{'s' if len(left) != 1 else ''} left unfinished when the run "
        f"stopped: {', '.join(parts)}{more}; {need} more evaluation"
        f"{'s' if need != 1 else ''} (raise --evaluations and run again) would decide "
        f"{'them' if len(left) != 1 else 'it'}."
    )


LEAD = DEFAULTS["noise"]["gate"]
"""A gain over the seed under this many noise floors is reported as a lead, not a result: the
default ``noise.gate`` (a would-be elite that close to the best is measured again)."""


def _verdict(summary: RunSummary) -> str:
    if summary.seed_fitness is None:
        return "The seed has no baseline yet: nothing to compare."
    if not summary.improved or summary.best_fitness is None:
        return (
            f"Nothing beat the seed: seed {summary.metric} {_fmt(summary.seed_fitness)} "
            f"(noise floor {_fmt(summary.noise_floor)})."
        )
    delta = summary.best_fitness - summary.seed_fitness
    if summary.noise_floor > 0:
        ratio = abs(delta) / summary.noise_floor
        dof = summary.noise_dof
        noise = f"{ratio:.1f}x the noise floor {_fmt(summary.noise_floor)}" + (
            f", itself estimated from {dof} degree{'s' if dof != 1 else ''} of freedom"
            if dof
            else ""
        )
        if ratio < LEAD:
            noise += (
                f"; under {LEAD:g}x the floor a gain is a lead, not yet a result: measure both "
                "with more seeds before trusting it"
            )
    elif summary.deterministic:
        noise = "the evaluator is deterministic: re-measured programs repeated exactly"
    else:
        noise = "no program was measured twice, so the noise is unknown"
    return (
        f"Best {summary.metric} {_fmt(summary.best_fitness)} against the seed's "
        f"{_fmt(summary.seed_fitness)}: {delta:+.4g} ({noise}); program "
        f"{summary.best_id[:12]}, see it with: evo best {summary.run_dir} --diff"
    )


def print_summary(summary: RunSummary, file: Any = None) -> None:
    console = Console(file=file or sys.stdout)
    console.print(summary_table(summary))
    console.print(verdict(summary), markup=False)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.5g}"


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "-"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"
