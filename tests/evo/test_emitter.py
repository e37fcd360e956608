"""The climbing emitter: its lineage state, and its share of a real run's children."""

from __future__ import annotations

import io
import json

import pytest
from loop_helpers import quadratic_target, search_config
from rich.console import Console

import evo
from archive import Program, RunStore
from evo.cli import main as cli_main
from evo.config import ConfigError, load_config
from evo.emitter import ClimbingEmitter, emitter_summary, why_off
from evo.policy import UNPARENTED, SearchPolicy
from evo.progress import summary_table


def measured_target(tmp_path, **kw):
    """noisy_quadratic with a niche that measures behaviour: the value of X (6 bins)."""
    target = quadratic_target(tmp_path, **kw)
    m = target / "measure.py"
    m.write_text(m.read_text().replace('"true_loss": true}', '"true_loss": true, "x": x}'))
    toml = target / "target.toml"
    toml.write_text(toml.read_text() + "\n[descriptors.x]\nrange = [-4.0, 4.0]\nbins = 6\n")
    return target


def child(cid: str, lineage: str, fitness: float | None, parent: str = "") -> Program:
    status = "ok" if fitness is not None else "crash"
    return Program(id=cid, source="", fidelity="f", status=status, fitness=fitness,
                   parents=(parent,) if parent else (), lineage=lineage)  # fmt: skip


def test_a_lineage_climbs_to_each_better_child_until_patience_runs_out():
    em = ClimbingEmitter(patience=3, direction="maximize")
    em.restart("root", 0.5)
    em.observe(child("a", "root", 0.4))
    em.observe(child("b", "root", 0.6))  # better than the head: the head moves
    assert (em.head, em.head_fitness, em.stall) == ("b", 0.6, 0)
    em.observe(child("c", "root", 0.6))  # equal is not better
    em.observe(child("d", "root", None))  # a failed child is not better
    assert (em.lineage, em.head, em.stall) == ("root", "b", 2)
    em.observe(child("e", "root", 0.55))
    assert (em.lineage, em.head, em.ended) == (None, None, 1)


def test_children_off_the_lineage_change_nothing_and_a_new_lineage_is_a_restart():
    em = ClimbingEmitter(patience=2)  # minimize
    em.restart("r1", 10.0)
    em.observe(child("x", "", 1.0))  # plain selection's child
    em.observe(child("a", "r1", 11.0))
    em.observe(child("a", "r1", 11.0))  # the same child re-measured: still one
    assert (em.head, em.stall) == ("r1", 1)
    # a lineage the emitter has not seen start (it started before a resume): a restart from
    # the child's parent, whose fitness the policy passes along
    em.observe(child("b", "r2", 7.0, parent="r2"), parent_fitness=8.0)
    assert (em.lineage, em.head, em.head_fitness, em.restarts) == ("r2", "b", 7.0, 2)
    em.observe(child("c", "r2", 7.5), parent_fitness=7.0)
    assert (em.head, em.stall) == ("b", 1)
    em.observe(child("d", "r1", 1.0))  # a late child of the lineage it left
    assert (em.lineage, em.head) == ("r2", "b")
    with pytest.raises(ValueError, match="patience"):
        ClimbingEmitter(patience=0)
    with pytest.raises(ValueError, match="direction"):
        ClimbingEmitter(direction="up")


@pytest.mark.parametrize(("key", "value"), [("emitter", 1.5), ("emitter", -0.1), ("patience", 0)])
def test_emitter_keys_out_of_range_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=f"archive.{key}"):
        load_config(None, {f"archive.{key}": value})


def test_the_emitter_makes_its_share_of_children_by_climbing_its_lineages(tmp_path):
    target = measured_target(tmp_path, start=(3.0, -2.0, 1.5, 2.5))
    run_dir = tmp_path / "run"
    cfg = search_config(target, run_dir, 40, workers=1, archive={"emitter": 0.5, "patience": 2})
    search = evo.Search(cfg, progress=False)
    search.run()
    store = RunStore.read(run_dir)
    kids = sorted(
        (p for p in store.programs.values() if p.operator != "seed"), key=lambda p: p.birth
    )
    mine = [p for p in kids if p.lineage]
    # about half the run's children, whichever operator the bandit favours (more: a
    # crossover's turn that made no child is drawn again, the emitter's local edits rarely
    # miss); neither none nor all
    assert 3 <= len(mine) <= len(kids) - 3, (len(mine), len(kids))
    by_id = {p.id: p for p in store.programs.values()}
    heads: dict[str, list[str]] = {}
    for p in mine:
        assert p.operator not in UNPARENTED and len(p.parents) == 1, p.operator
        chain = heads.setdefault(p.lineage, [p.lineage])
        assert p.parents[0] in chain, "an emitter child's parent is its lineage's root or head"
        parent = by_id[p.parents[0]]
        if p.ok and parent.ok and p.fitness < parent.fitness:
            chain.append(p.id)  # a better child may be the next head
    assert len(heads) >= 2, "patience 2 ends a lineage within a few children"
    info = emitter_summary(store, "default")
    assert (info["children"], info["lineages"]) == (len(mine), len(heads))
    # on resume the store replays the emitter's state: the live one, unless its last restart
    # had no finished child yet (then the replay has not seen that restart)
    policy = search.proposer.policy
    rebuilt = SearchPolicy(policy.prior, fidelity="default", direction="minimize", patience=2)
    rebuilt.rebuild(store)
    live, replayed = policy.emitter, rebuilt.emitter
    assert replayed.ended >= len(heads) - 2
    if live.lineage in heads:
        assert (replayed.lineage, replayed.head, replayed.stall, replayed.ended) == (
            live.lineage,
            live.head,
            live.stall,
            live.ended,
        )


def test_the_emitter_keeps_its_share_when_the_bandit_favours_tpe(tmp_path):
    """The share is of all children: when it was of the children of operators other than
    ``tpe``, a high ``tpe`` weight left the emitter almost nothing (``deceptive``'s escapes
    fell to evo greedy's)."""
    target = measured_target(tmp_path)
    cfg = search_config(
        target, tmp_path / "run", 30, workers=1, operators={"tpe": 20.0}, noise={"seeds": 1}
    )
    evo.Search(cfg, progress=False).run()
    kids = [p for p in RunStore.read(tmp_path / "run").programs.values() if p.operator != "seed"]
    mine = [p for p in kids if p.lineage]
    assert len(mine) >= 0.25 * len(kids), (len(mine), len(kids))  # the old rule gave ~3%


@pytest.mark.parametrize(
    ("niches", "archive", "why"),
    [
        ("x", {"emitter": 0.0}, ""),
        ("x", {"selection": "greedy"}, "archive.selection is 'greedy'"),
        ("x", {"descriptors": ["region", "edit_size_bin"]}, "the niches are the edit descriptors"),
        ("edit", {}, "the niches are the edit descriptors"),
    ],
    ids=["emitter-off", "greedy", "edit-descriptors-chosen", "edit-descriptors-by-default"],
)
def test_no_emitter_child_when_off_not_mixed_or_the_niches_measure_only_edits(
    tmp_path, niches, archive, why, capsys, monkeypatch
):
    """The emitter climbs niches of behaviour; on the edit descriptors (distance from the
    seed) it cost two problems of the search benchmark and is not used. The closing table
    and ``evo status`` say why it made no child, unless the user turned it off."""
    target = measured_target(tmp_path) if niches == "x" else quadratic_target(tmp_path)
    cfg = search_config(target, tmp_path / "run", 16, archive={"emitter": 0.9, **archive})
    summary = evo.Search(cfg, progress=False).run()
    store = RunStore.read(tmp_path / "run")
    assert len(store.programs) > 5 and not any(p.lineage for p in store.programs.values())
    assert (why in summary.emitter_off) and (summary.emitter_off.startswith("off: ") == bool(why))
    out = io.StringIO()
    Console(file=out, width=400).print(summary_table(summary))
    row = [line for line in out.getvalue().splitlines() if "climbing emitter" in line]
    assert (why in row[0]) if why else not row
    # evo status reads the store, not the proposer: the reason comes from counters.json
    monkeypatch.setenv("COLUMNS", "400")
    capsys.readouterr()
    assert cli_main(["status", str(tmp_path / "run")]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if "climbing emitter" in line]
    assert (why in row[0]) if why else not row
    assert cli_main(["status", "--json", str(tmp_path / "run")]) == 0
    assert json.loads(capsys.readouterr().out)["emitter_off"] == summary.emitter_off


def test_the_emitter_is_off_without_a_one_parent_operator():
    assert "no one-parent operator" in why_off(0.5, "mixed", True, False)
    assert why_off(0.5, "mixed", True, True) == ""
