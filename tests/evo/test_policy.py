"""The search policy: operator shares from a bandit with a floor, and the adaptive step size."""

from __future__ import annotations

import numpy as np
import pytest
from loop_helpers import quadratic_target, search_config

import evo
from archive import HistoryRow, Program, RunStore, SeedRun
from evo.policy import MAX_STEP, MIN_STEP, SearchPolicy, first_parent


class Feed:
    """History rows for a minimising run whose best starts at 100."""

    def __init__(self, policy: SearchPolicy):
        self.policy, self.best, self.n = policy, 100.0, 0
        self.seed = Program(id="seed", source="", fidelity="f", status="ok", fitness=100.0)
        self.child("seed", improves=True)

    def child(self, op: str, improves: bool, parent: Program | None = None, runs: int = 1):
        self.n += 1
        fitness = self.best - 1 if improves else self.best + 1
        p = Program(
            id=f"c{self.n}",
            source="",
            fidelity="f",
            operator=op,
            status="ok",
            fitness=fitness,
            parents=(parent.id,) if parent else (),
            runs=[SeedRun(seed=i, status="ok") for i in range(runs)],
        )
        if improves:
            self.best = fitness
        row = HistoryRow(self.n, 0.0, p.id, "f", "ok", fitness, self.best, 1, 0.1, 1.0,
                         "improved" if improves else "not_added")  # fmt: skip
        self.policy.observe(row, p, parent)
        return p


def test_shares_start_at_the_weights():
    pol = SearchPolicy({"a": 3.0, "b": 1.0}, fidelity="f")
    assert pol.shares() == pytest.approx({"a": 0.75, "b": 0.25}, abs=0.03)
    off = SearchPolicy({"a": 3.0, "b": 1.0}, fidelity="f", bandit=False)
    assert off.shares() == {"a": 0.75, "b": 0.25}
    assert off.shares(["b"]) == {"b": 1.0}
    with pytest.raises(ValueError, match="floor"):
        SearchPolicy({"a": 1.0, "b": 1.0}, fidelity="f", floor=0.5)


def test_without_a_reward_the_shares_stay_at_the_weights():
    # sparse rewards (a noisy evaluator, a plateau) are no evidence against the weights: an
    # additive prior drifted toward equal runs here ("a" from 0.75 to ~0.6)
    pol = SearchPolicy({"a": 3.0, "b": 1.0}, fidelity="f")
    start = pol.shares()
    feed = Feed(pol)
    for i in range(120):
        feed.child("a" if i % 4 else "b", improves=False)
    assert pol.shares() == pytest.approx(start, abs=1e-9)


@pytest.mark.parametrize("weights", [(3.0, 1.0), (1.0, 3.0), (8.0, 1.0)])
def test_operators_that_earn_alike_keep_their_weights_shares(weights):
    pol = SearchPolicy(dict(zip("ab", weights, strict=True)), fidelity="f", floor=0.0)
    feed = Feed(pol)
    for i in range(200):  # one child in five improves, whichever operator made it
        feed.child("ab"[i % 2], improves=i % 10 < 2)
    share = weights[0] / sum(weights)
    assert pol.shares()["a"] == pytest.approx(share, abs=0.05)
    # one that earns five times as fast gains on its weight (odds b:a ~5x the weights')
    for i in range(200):
        feed.child("ab"[i % 2], improves=i % 10 in ((0,) if i % 2 == 0 else (1, 3, 5, 7, 9)))
    s = pol.shares()
    assert s["b"] / s["a"] > 2.5 * weights[1] / weights[0]


def test_an_operator_that_works_gains_and_one_that_does_not_keeps_the_floor():
    pol = SearchPolicy({"good": 1.0, "bad": 1.0, "meh": 1.0}, fidelity="f", floor=0.05)
    feed = Feed(pol)
    for i in range(200):
        feed.child("good", improves=i % 3 == 0)
        feed.child("bad", improves=False)
        feed.child("meh", improves=i % 12 == 0)
    s = pol.shares()
    assert s["good"] > 0.6 and s["good"] > s["meh"] > s["bad"]
    assert s["bad"] >= 0.05 - 1e-9  # the floor: never starved
    picks = [pol.pick(np.random.default_rng(k), ["good", "bad", "meh"]) for k in range(2000)]
    assert abs(picks.count("bad") / 2000 - s["bad"]) < 0.03


def test_shares_follow_a_change_of_what_works():
    pol = SearchPolicy({"a": 1.0, "b": 1.0}, fidelity="f")
    feed = Feed(pol)
    for _ in range(100):
        feed.child("a", improves=True)
        feed.child("b", improves=False)
    assert pol.shares()["a"] > 0.8
    for _ in range(100):
        feed.child("a", improves=False)
        feed.child("b", improves=True)
    assert pol.shares()["b"] > 0.8  # recent children weigh more


def test_a_costly_child_earns_less_per_run():
    pol = SearchPolicy({"cheap": 1.0, "costly": 1.0}, fidelity="f")
    feed = Feed(pol)
    for _ in range(50):
        feed.child("cheap", improves=True)
        feed.child("costly", improves=True, runs=3)
    assert pol.shares()["cheap"] > 0.6


def test_the_step_size_grows_while_steps_succeed_and_shrinks_when_they_stop():
    pol = SearchPolicy({"constants": 1.0}, fidelity="f")
    feed = Feed(pol)
    parent = feed.seed
    for _ in range(30):
        parent = feed.child("constants", improves=True, parent=parent)
    assert pol.steps["constants"] == MAX_STEP
    for _ in range(200):
        feed.child("constants", improves=False, parent=parent)
    assert pol.steps["constants"] == MIN_STEP
    pol.steps["constants"] = 1.0
    for i in range(100):  # one success in five holds it steady
        child = feed.child("constants", improves=i % 5 == 0, parent=parent)
        if i % 5 == 0:
            parent = child
    assert 0.5 < pol.steps["constants"] < 2.0


def test_the_policy_of_a_resumed_run_is_the_one_its_store_replays(tmp_path):
    target = quadratic_target(tmp_path)
    run_dir = tmp_path / "run"
    search = evo.Search(search_config(target, run_dir, 24, workers=2), progress=False)
    search.run()
    live = search.proposer.policy
    replayed = SearchPolicy(
        {name: live.prior[name] for name in live.names}, fidelity="default", direction="minimize"
    )
    replayed.rebuild(RunStore.read(run_dir))
    assert replayed.shares() == pytest.approx(live.shares())
    assert replayed.steps["constants"] == pytest.approx(live.steps["constants"])
    assert replayed.added == live.added and sum(live.added.values()) > 0
    assert live.shares() != pytest.approx(SearchPolicy(live.prior, fidelity="x").shares())
    store = RunStore.read(run_dir)
    child = next(p for p in store.programs.values() if p.operator == "constants")
    assert first_parent(store, child).id == child.parents[0]
