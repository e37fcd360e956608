"""Parent selection: uniform, weighted with offspring penalty, greedy."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from archive import Program, select_parents
from archive.selection import weights


def elites(n: int = 10) -> list[Program]:
    # p0 is the best for minimize (lowest fitness), p{n-1} the worst.
    return [
        Program(id=f"p{i}", source="", fidelity="f", status="ok", fitness=float(i))
        for i in range(n)
    ]


def picks(strategy, k=4000, seed=0, counts=None, direction="minimize", es=None):
    chosen = select_parents(
        strategy, es or elites(), k, np.random.default_rng(seed), counts, direction=direction
    )
    assert len(chosen) == k
    return collections.Counter(p.id for p in chosen)


def test_unknown_strategy_names_the_allowed_ones():
    with pytest.raises(
        ValueError, match=r"'tournament'.*\['mixed', 'uniform', 'weighted', 'greedy'\]"
    ):
        select_parents("tournament", elites(), 1, np.random.default_rng(0))


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no elites"):
        select_parents("uniform", [], 1, rng)
    with pytest.raises(ValueError, match="k must be"):
        select_parents("uniform", elites(), 0, rng)
    with pytest.raises(ValueError, match="direction"):
        select_parents("greedy", elites(), 1, rng, direction="down")


@pytest.mark.parametrize("strategy", ["uniform", "weighted", "greedy"])
def test_the_same_seed_gives_the_same_parents(strategy):
    assert picks(strategy, 50, seed=3) == picks(strategy, 50, seed=3)
    a = select_parents(strategy, elites(), 20, np.random.default_rng(5), {"p1": 2})
    b = select_parents(strategy, elites(), 20, np.random.default_rng(5), {"p1": 2})
    assert [p.id for p in a] == [p.id for p in b]


def test_uniform_picks_every_elite_about_equally():
    counts = picks("uniform", k=10_000)
    assert set(counts) == {f"p{i}" for i in range(10)}
    assert all(850 < c < 1150 for c in counts.values()), counts
    assert picks("uniform", 50, seed=1) != picks("uniform", 50, seed=2)


def test_weighted_favours_fit_parents_in_either_direction():
    counts = picks("weighted")
    assert counts["p0"] > 5 * counts["p9"]
    assert counts["p0"] >= counts["p4"] >= counts["p9"]
    flipped = picks("weighted", direction="maximize")
    assert flipped["p9"] > 5 * flipped["p0"]


def test_weighted_penalises_parents_that_already_have_many_children():
    base = picks("weighted")
    tired = picks("weighted", counts={"p0": 9})
    assert tired["p0"] < base["p0"] / 4
    w = weights(elites(), {"p0": 9})
    assert w.sum() == pytest.approx(1.0) and np.all(w > 0)
    fresh = weights(elites(), {})
    assert w[0] / w[1] == pytest.approx(fresh[0] / fresh[1] / 10)  # 1 / (1 + 9 children)


def test_weighted_ranks_do_not_depend_on_the_list_order():
    es = elites()
    w = weights(es, {"p3": 1})
    rev = weights(es[::-1], {"p3": 1})
    assert np.allclose(w, rev[::-1])


def test_greedy_returns_only_the_best():
    assert picks("greedy", k=7) == {"p0": 7}
    assert picks("greedy", k=3, direction="maximize") == {"p9": 3}
    tie = [Program(id=i, source="", fidelity="f", status="ok", fitness=1.0) for i in "cab"]
    assert picks("greedy", k=1, es=tie) == {"a": 1}


@pytest.mark.parametrize("exploit", [0.3, 0.7, 1.0])
def test_mixed_gives_the_best_its_share_and_spreads_the_rest(exploit):
    k = 6000
    chosen = [
        select_parents("mixed", elites(), 1, np.random.default_rng(s), exploit=exploit)[0].id
        for s in range(k)
    ]
    counts = collections.Counter(chosen)
    assert abs(counts["p0"] / k - exploit) < 0.025, counts  # no children yet: equal curiosity
    if exploit < 1:
        others = [counts[f"p{i}"] / k for i in range(1, 10)]
        assert all(abs(x - (1 - exploit) / 9) < 0.02 for x in others), others
    rev = select_parents(
        "mixed", elites(), 1, np.random.default_rng(0), direction="maximize", exploit=1.0
    )
    assert rev[0].id == "p9"


def test_mixed_crossover_parents_are_distinct_while_they_can_be():
    for s in range(200):
        a, b = select_parents("mixed", elites(3), 2, np.random.default_rng(s), exploit=0.9)
        assert a.id != b.id
    solo = select_parents("mixed", elites(1), 2, np.random.default_rng(0))
    assert [p.id for p in solo] == ["p0", "p0"]
    with pytest.raises(ValueError, match="exploit"):
        select_parents("mixed", elites(), 1, np.random.default_rng(0), exploit=1.5)


def test_mixed_explores_niches_whose_children_keep_entering_the_archive():
    """Curiosity: an elite with many children and none added gives way to one still climbing;
    a new elite (no children yet) sits in between."""
    es = elites(3)  # p0 best
    counts = {"p1": 20, "p2": 20}
    added = {"p1": 0, "p2": 15}
    from archive.selection import curiosity

    w = curiosity(es, counts, added)
    assert w[2] > w[0] > w[1]
    assert w[0] / w.sum() == pytest.approx(0.5 / (0.5 + 1 / 22 + 16 / 22))
    picks = collections.Counter(
        select_parents("mixed", es, 1, np.random.default_rng(s), counts, exploit=0.0, added=added)[
            0
        ].id
        for s in range(3000)
    )
    assert picks["p2"] > picks["p0"] > picks["p1"] > 0  # never starved


def test_a_best_whose_children_stop_entering_the_archive_gives_way():
    """The exploit share holds at equal curiosity; a saturated best gives parents up."""
    es = elites(5)

    def share_of_best(counts, added):
        picks = [
            select_parents(
                "mixed", es, 1, np.random.default_rng(s), counts, exploit=0.5, added=added
            )[0].id
            for s in range(3000)
        ]
        return picks.count("p0") / len(picks)

    fresh = share_of_best({}, {})
    climbing = share_of_best({"p0": 10, "p1": 10}, {"p0": 6, "p1": 6})
    stuck = share_of_best({"p0": 30}, {"p0": 0})
    assert abs(fresh - 0.5) < 0.03 and abs(climbing - 0.5) < 0.04
    assert stuck < 0.15
