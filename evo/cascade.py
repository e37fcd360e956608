"""Multi-fidelity promotion: search cheaply at the first level, promote the best upwards.

Karpathy tuned at depth 12 and promoted to depth 24; the cascade automates that: the search
(operators, selection, dedup) runs at ``cascade.levels[0]``; whenever a program finishes at a
level, the promotion rule looks at that level's archive and queues the programs it promotes for
evaluation at the next level, ahead of new children. Each level has its own archive (the store
keys programs by ``(id, fidelity)``), its own seed baseline and noise floor, and its own noise
gate. The best reported is the best at the highest level any program reached.

Rules: ``top`` and ``beats_incumbent`` pick among a level's elites; ``threshold`` is
OpenEvolve's cascade: every ok program whose fitness at a level reaches that level's threshold
(``>=`` when maximizing, ``<=`` when minimizing) goes on to the next level, the others stop
there. An OpenEvolve stage's score is ``combined_score`` (the runner fills in OpenEvolve's mean
of the stage's metrics when a stage gives none), so this is OpenEvolve's rule exactly.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from archive import PENDING, Program, RunStore

RULES = ("top", "beats_incumbent", "threshold")


class CascadeError(ValueError):
    """A ``[cascade]`` table that does not fit the target (an unknown fidelity, say)."""


class Cascade:
    """The levels of a run and its promotion rule.

    Args:
        cfg: the ``[cascade]`` table of the resolved config.
        fidelities: the target's fidelity names.
        default: the fidelity of a run without a cascade (``run.fidelity`` or the target's).
        slots: the run's slot count, to check ``reserve`` against.
    """

    def __init__(self, cfg: dict[str, Any], fidelities: list[str], default: str, slots: int):
        levels = list(cfg["levels"]) or [default]
        for name in levels:
            if name not in fidelities:
                raise CascadeError(
                    f"cascade.levels: unknown fidelity {name!r}; the target's "
                    f"fidelities: {fidelities}"
                )
        if len(set(levels)) != len(levels):
            raise CascadeError(f"cascade.levels: a level appears twice in {levels}")
        reserve = list(cfg["reserve"])
        if len(reserve) > len(levels) - 1:
            raise CascadeError(
                f"cascade.reserve: {len(reserve)} numbers for "
                f"{len(levels) - 1} levels above the first; give one per level"
            )
        if sum(reserve) >= slots:
            raise CascadeError(
                f"cascade.reserve: {sum(reserve)} reserved slots leave none of "
                f"the {slots} for the search at {levels[0]!r}; reserve fewer"
            )
        self.levels = levels
        self.rule = cfg["promote"]
        self.thresholds = [float(t) for t in cfg.get("thresholds", [])]
        if self.active and self.rule == "threshold" and len(self.thresholds) != len(levels) - 1:
            raise CascadeError(
                f"cascade.thresholds: promote = 'threshold' needs one threshold per level "
                f"above the first ({len(levels) - 1} for {levels}), got {self.thresholds}"
            )
        self.top_fraction = cfg["top_fraction"]
        self.reserved = sum(reserve)

    @property
    def base(self) -> str:
        return self.levels[0]

    @property
    def active(self) -> bool:
        return len(self.levels) > 1

    def next_level(self, fidelity: str) -> str | None:
        i = self.levels.index(fidelity)
        return self.levels[i + 1] if i + 1 < len(self.levels) else None

    def base_slots(self, slots: int) -> int:
        """Slots the first level may fill; the rest wait for promoted programs."""
        return slots - self.reserved

    def promotions(
        self, store: RunStore, fidelity: str, floor: float, gate: float, better: Any
    ) -> list[Program]:
        """Programs of ``fidelity`` the rule promotes that are not yet at the next level.

        ``top``: the best ``top_fraction`` of the level's elites (at least one).
        ``beats_incumbent``: elites whose fitness beats the best program already promoted
        from this level (at first the seed) by more than ``gate`` x the level's noise floor.
        ``threshold``: every ok program of the level (elite or not) whose fitness is at least
        as good as the level's threshold.
        """
        up = self.next_level(fidelity)
        if up is None:
            return []
        archive = store.elites(fidelity)
        if self.rule == "threshold":
            bar = self.thresholds[self.levels.index(fidelity)]
            chosen = [
                p
                for p in store.programs.values()
                if p.fidelity == fidelity and p.ok and not better(bar, p.fitness)
            ]
            chosen.sort(key=archive.score, reverse=True)
            return [p for p in chosen if (p.id, up) not in store.programs]
        elites = store.elite_programs(fidelity)
        elites.sort(key=archive.score, reverse=True)
        if self.rule == "top":
            chosen = elites[: max(1, math.ceil(self.top_fraction * len(elites)))]
        else:
            promoted = [
                p
                for p in store.programs.values()
                if p.fidelity == fidelity and p.ok and (p.id, up) in store.programs
            ]
            if not promoted:
                return []
            incumbent = max(promoted, key=archive.score)
            chosen = [
                p
                for p in elites
                if better(p.fitness, incumbent.fitness)
                and abs(p.fitness - incumbent.fitness) > gate * floor
            ]
        return [p for p in chosen if (p.id, up) not in store.programs]

    @staticmethod
    def promoted_record(p: Program, up: str) -> Program:
        """A pending record of ``p`` at level ``up`` (same program, lineage and descriptors)."""
        return replace(
            p,
            fidelity=up,
            status=PENDING,
            runs=[],
            fitness=None,
            fitness_std=None,
            descriptors={
                k: v
                for k, v in p.descriptors.items()
                if k in ("region", "edit_size", "edit_size_bin", "constants")
            },
            wall_time=0.0,
            cost=0.0,
            tokens=0,
            reason="",
            stderr_tail="",
        )
