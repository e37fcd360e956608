"""A structural child is made when a slot frees, from the archive as it is then.

Made earlier (while every slot is busy) it would miss the results told before it runs: greedy
selection would hand it a parent that is no longer the best, and ``tpe`` would be told a
"running" trial for every busy slot plus the one just freed. Only LLM requests, which take
seconds, are started early.
"""

from __future__ import annotations

from pathlib import Path

import evo
import operators.tpe
from archive import RunStore

PLAIN = Path(__file__).resolve().parent.parent / "fixtures" / "openevolve_plain"


def test_children_see_every_result_told_before_they_run(tmp_path, monkeypatch):
    running: list[int] = []
    ask = operators.tpe._ask

    def counting_ask(space, trials, direction, seed):  # a spy: the real sampler answers
        running.append(sum(t.running for t in trials))
        return ask(space, trials, direction, seed)

    monkeypatch.setattr(operators.tpe, "_ask", counting_ask)
    added: list[tuple[str, str, tuple, str, float | None]] = []
    add_many = RunStore.add_many

    def recording_add_many(self, programs):  # a spy: the real store adds them
        added.extend((p.id, p.operator, p.parents, p.status, p.fitness) for p in programs)
        return add_many(self, programs)

    monkeypatch.setattr(RunStore, "add_many", recording_add_many)
    workers = 2
    off = ("tpe_local", "choice", "toggle", "uniform_crossover", "merge")
    cfg = evo.load_config(
        None,
        {
            "run.target": str(PLAIN),
            "run.run_dir": str(tmp_path / "run"),
            "run.evaluations": 30,
            "backend.workers": workers,
            "archive.selection": "greedy",
            "llm.base_url": "",
            **{f"operators.{name}": 0.0 for name in off},
        },
    )
    evo.Search(cfg, progress=False).run()

    assert len(running) >= 5 and max(running) <= workers - 1, running
    # In the order the store was told: each child's parent is the best result told before
    # the child was added (dispatched), whatever the operator.
    fitness: dict[str, float] = {}
    seen: set[str] = set()
    checked = 0
    for pid, operator, parents, status, value in added:
        if pid not in seen and operator != "seed":
            seen.add(pid)
            if fitness:
                best = min(fitness, key=lambda i: (-fitness[i], i))  # maximised; ties: smaller id
                assert parents[0] == best, (operator, pid)
                checked += 1
        if status == "ok":
            fitness[pid] = value
    assert checked >= 20
