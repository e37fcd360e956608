"""The climbing emitter: a share of the run's children climbs from one elite at a time.

Parent selection alone spreads children thinly: a niche far from the best (a large model whose
learning rate and warm-up are still wrong, say) gets a child now and then, never enough in a
row to climb, while greedy keep/discard gives every child to the best and saturates on its
hill. CMA-ME's emitters (Fontaine et al. 2020, "Covariance Matrix Adaptation for the Rapid
Illumination of Behavior Space", sec. 3) do both: each searches around one solution for as long
as that pays, then restarts from an elite of the archive. evo runs one such emitter, with
local operators in place of CMA-ES and a (1+1) hill climber's rule (Rechenberg 1973) in place
of CMA-ES's update:

- a share ``archive.emitter`` of the run's children (with ``mixed`` selection, and niches
  that measure behaviour, see below) is made on the emitter's turn, by a one-parent operator
  that keeps its parent's code (``constants``, ``tpe_local``, ``choice``, ``toggle``,
  ``llm_mutation``; the bandit's shares among them), from the emitter's *head*; the other
  turns pick any operator by the bandit's shares. (The share used to be of the children of
  parented operators only, all but ``tpe``: then the emitter's budget shrank whenever the
  bandit favoured ``tpe``, and with the eleventh session's bandit, which keeps ``tpe`` near
  its weight, ``deceptive``'s escapes fell to evo greedy's, 13 of 30 each.)
- a child better than the head becomes the head;
- after ``archive.patience`` children in a row that were not, the lineage ends; the next turn
  restarts from the elite with the fewest children so far (not the best, which ``mixed``
  selection already exploits, while another exists), ties at random.

Every child made on the emitter's turn records its lineage (:attr:`archive.Program.lineage`,
the id of the elite the lineage started from), so the emitter learns from history rows only,
live and on resume alike, through :meth:`ClimbingEmitter.observe`. A restart whose children
had not finished when a run stopped is made afresh on resume.

The emitter climbs niches, so it is used only where a niche dim is a metric the program
reports (``[descriptors]``, ``niches`` or ``archive.descriptors``: a behaviour the user chose,
:func:`evo.niches.measured_niches`). On the edit descriptors alone (the fallback niches:
distance from the seed) its lineages climbed weak elites that local search around the best
would reach anyway.

Measured (BENCHMARKS.md, "ninth session" and "eleventh session"; 100 runs): on
``deceptive``, where greedy keep/discard stays on the small-model hill, 63% of the default's
runs reach the higher hill (19 of 30) against evo greedy's 43% (13 of 30); used on the edit
descriptors too, it cost ``restart_search`` (-3.69 against -2.94 @100, 10 seeds) and
``mlp_digits`` (0.9849 against 0.9891).
"""

from __future__ import annotations

from typing import Any

from archive import Program

PATIENCE = 12
"""Default children in a row not better than the head before a lineage ends."""
SHARE = 0.5
"""Default share of the run's children made on the emitter's turn."""


class ClimbingEmitter:
    """The state of the run's climbing emitter (see the module docstring).

    Args:
        patience: children in a row not better than the head before the lineage ends (>= 1).
        direction: ``minimize`` or ``maximize`` fitness.

    Raises:
        ValueError: ``patience`` < 1 or an unknown direction.

    Example:
        >>> em = ClimbingEmitter(patience=2, direction="minimize")
        >>> em.restart("a", 5.0)
        >>> def child(cid, fitness):
        ...     return Program(id=cid, source="", fidelity="f", status="ok", fitness=fitness,
        ...                    parents=(em.head,), lineage="a")
        >>> em.observe(child("b", 4.0))
        >>> em.head
        'b'
        >>> em.observe(child("c", 4.5)); em.observe(child("d", 4.0))
        >>> em.head is None, em.ended
        (True, 1)
    """

    def __init__(self, patience: int = PATIENCE, direction: str = "minimize"):
        if patience < 1:
            raise ValueError(f"ClimbingEmitter: patience must be >= 1, got {patience}")
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        self.patience, self.sign = patience, 1.0 if direction == "maximize" else -1.0
        self.lineage: str | None = None  # the elite the current lineage started from
        self.head: str | None = None  # the parent of the emitter's next child
        self.head_fitness: float | None = None
        self.stall = 0  # children in a row not better than the head
        self.restarts = 0
        self.ended = 0  # lineages that ran out of patience
        self._over: set[str] = set()  # lineages that ended or were left for another
        self._seen: set[str] = set()

    def restart(self, root: str, fitness: float | None) -> None:
        """Start a new lineage from program ``root`` (an elite of fitness ``fitness``); the
        current one is left."""
        if self.lineage is not None:
            self._over.add(self.lineage)
        self.lineage = self.head = root
        self.head_fitness, self.stall = fitness, 0
        self.restarts += 1

    def observe(self, program: Program, parent_fitness: float | None = None) -> None:
        """Learn from one finished program (``parent_fitness``: its first parent's, None when
        unknown). Programs made off the emitter's turn, for a lineage that is over, or seen
        before (re-measured) change nothing."""
        tag = program.lineage
        if not tag or tag in self._over or program.id in self._seen:
            return
        self._seen.add(program.id)
        if tag != self.lineage:  # restarted before a resume: the journal shows it only now,
            self.restart(tag, parent_fitness)  # at its first child, whose parent is the root
        value = self.sign * float(program.fitness) if program.ok else None  # type: ignore[arg-type]
        if value is not None and (
            self.head_fitness is None or value > self.sign * self.head_fitness
        ):
            self.head, self.head_fitness, self.stall = program.id, program.fitness, 0
            return
        self.stall += 1
        if self.stall >= self.patience:
            self._over.add(tag)
            self.lineage = self.head = self.head_fitness = None
            self.stall = 0
            self.ended += 1


def why_off(share: float, selection: str, measured: bool, local: bool) -> str:
    """Why a run given ``archive.emitter = share`` makes no emitter child, in words for the
    closing table; ``""`` when it makes them, or when ``share`` is 0 (off by choice).

    Args:
        share: ``archive.emitter``.
        selection: ``archive.selection``.
        measured: a niche dim is a reported metric (:func:`evo.niches.measured_niches`).
        local: a one-parent operator that keeps its parent's code has a weight > 0.

    Example:
        >>> why_off(0.5, "greedy", True, True)
        "off: archive.selection is 'greedy'; the emitter runs with 'mixed'"
    """
    if share <= 0:
        return ""
    if selection != "mixed":
        return f"off: archive.selection is {selection!r}; the emitter runs with 'mixed'"
    if not measured:
        return (
            "off: the niches are the edit descriptors; it climbs niches of a metric the "
            "program reports ([descriptors] in target.toml, or archive.descriptors)"
        )
    if not local:
        return (
            "off: no one-parent operator (constants, tpe_local, choice, toggle, llm_mutation) "
            "has a weight"
        )
    return ""


def emitter_summary(store: Any, fidelity: str) -> dict[str, Any]:
    """What the emitter did at ``fidelity``, from a store's records (``RunStore``):
    ``children`` made on its turn, ``lineages`` they belong to, ``entered`` (children that
    entered the archive) and ``best`` (id of the best ok child, or None).

    Example (``store`` a run's ``RunStore``): ``{"children": 41, "lineages": 6, "entered": 12,
    "best": "9f3c..."}``.
    """
    kids = [p for p in store.programs.values() if p.fidelity == fidelity and p.lineage]
    ids = {p.id for p in kids}
    entered = {
        r.id
        for r in store.history
        if r.fidelity == fidelity and r.id in ids and r.added in ("new", "improved")
    }
    ok = [p for p in kids if p.ok]
    sign = 1.0 if store.meta.get("direction") == "maximize" else -1.0
    best = max(ok, key=lambda p: sign * float(p.fitness), default=None)  # type: ignore[arg-type]
    return {
        "children": len(kids),
        "lineages": len({p.lineage for p in kids}),
        "entered": len(entered),
        "best": best.id if best is not None else None,
    }


def emitter_line(info: dict[str, Any], best_id: str | None, off: str = "") -> str:
    """:func:`emitter_summary`'s dict in words (``best_id``: the run's best); without an
    emitter child, ``off`` (:func:`why_off`), so ``""`` when there is nothing to say.

    Example:
        >>> emitter_line({"children": 41, "lineages": 1, "entered": 12, "best": "b"}, "b")
        "41 children in 1 lineage, 12 entered the archive; the run's best is one of them"
    """
    if not info.get("children"):
        return off
    n, k = info["children"], info["lineages"]
    line = (
        f"{n} child{'' if n == 1 else 'ren'} in {k} lineage{'' if k == 1 else 's'}, "
        f"{info['entered']} entered the archive"
    )
    if best_id is not None and info["best"] == best_id:
        line += "; the run's best is one of them"
    return line
