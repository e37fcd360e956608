"""``tpe`` and the search space it samples: inferred bounds, integers, choices, flags, history."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ops_testkit import module_value, program, rng

from archive.program import Program, SeedRun
from operators import Context, NoChild, SampleConstants, build_operators, canonical_hash
from operators.parsed import parsed
from operators.space import Param, infer_space, read_point, write_point

SEED = """import math

# EVOLVE-BLOCK-START
LEARNING_RATE = 0.01  # a rate: log scale
EPOCHS = 20
HIDDEN = 64
MOMENTUM = 0.9
DROPOUT = 0.1
WEIGHT_DECAY = 0.0
OFFSET = -2.5
BETAS = (0.8, 0.95)
ACTIVATION = "relu"  # evo: choice(relu, tanh, gelu)
USE_BIAS = True
SEED = 7
# EVOLVE-BLOCK-END
FIXED = 3.0
"""


def space(**ctx):
    return infer_space(SEED, block=True, **ctx)


def test_the_space_is_inferred_from_the_seed():
    s = space()
    assert "SEED" not in s and "FIXED" not in s  # frozen name; outside the evolve block
    lr, ep, hid = s["LEARNING_RATE"], s["EPOCHS"], s["HIDDEN"]
    assert (lr.kind, lr.log) == ("float", True)
    assert (lr.low, lr.high) == pytest.approx((0.01 / 30, 0.3))  # 1.5 decades either side
    assert (ep.kind, ep.log, ep.low, ep.high) == ("int", True, 2, 160)  # integers: 8x either side
    assert (hid.kind, hid.low, hid.high) == ("pow2", 3, 9)  # 8 .. 512, powers of two
    mom = s["MOMENTUM"]
    assert mom.kind == "one_minus" and mom.low == pytest.approx(0.1 / 30) and mom.high == 1.0
    assert s["DROPOUT"].high == 0.99  # a probability stays below 1
    assert (s["WEIGHT_DECAY"].low, s["WEIGHT_DECAY"].high) == (1e-5, 0.1)
    off = s["OFFSET"]
    assert off.sign == -1 and (off.low, off.high) == pytest.approx((2.5 / 30, 75.0))
    assert s["BETAS[0]"].kind == s["BETAS[1]"].kind == "one_minus"
    assert s["ACTIVATION"].choices == ("relu", "tanh", "gelu") and s["ACTIVATION"].strings
    assert s["USE_BIAS"].kind == "flag"


def test_ranges_and_choices_from_the_target_win_and_are_hard():
    s = space(ranges={"EPOCHS": (5, 50), "LEARNING_RATE": (0.001, 0.02)}, choices={})
    assert (s["EPOCHS"].kind, s["EPOCHS"].low, s["EPOCHS"].high, s["EPOCHS"].hard) == (
        "int",
        5,
        50,
        True,
    )
    assert s["LEARNING_RATE"].log and s["LEARNING_RATE"].hard
    wide = s["EPOCHS"].widened(best=50.0)
    assert (wide.low, wide.high) == (5, 50)  # never widened


def test_soft_bounds_follow_the_best_past_an_edge_but_not_past_nature():
    lr = space()["LEARNING_RATE"]
    assert lr.widened(best=0.05) is lr and lr.widened(best=None) is lr  # not at an edge
    up = lr.widened(best=0.29)
    assert up.low == lr.low and up.high == pytest.approx(0.3 * 900)  # + its 3 decades
    out = lr.widened(best=0.5)  # a best outside: held, then widened from there
    assert out.high == pytest.approx(0.5 * (0.5 / lr.low) ** 1)
    drop = space()["DROPOUT"]
    assert drop.widened(best=0.98).high == 0.99


def test_read_and_write_points():
    s = space()
    p = parsed(SEED)
    point = read_point(p, s, block=True)
    assert point["HIDDEN"] == 64 and point["ACTIVATION"] == "relu" and point["USE_BIAS"] is True
    assert point["BETAS[1]"] == 0.95 and point["OFFSET"] == -2.5
    new = dict(point, HIDDEN=128, ACTIVATION="gelu", USE_BIAS=False, OFFSET=-0.5)
    new["BETAS[1]"] = 0.99
    stmts, notes = write_point(p, s, new, block=True)
    assert sorted(n.split(":")[0] for n in notes) == [
        "ACTIVATION",
        "BETAS[1]",
        "HIDDEN",
        "OFFSET",
        "USE_BIAS",
    ]
    from operators.base import replace_statements

    child = replace_statements(p, stmts)
    assert read_point(parsed(child), s, block=True) == new
    assert 'ACTIVATION = "gelu"  # evo: choice(relu, tanh, gelu)' in child  # comment kept
    assert write_point(p, s, point, block=True) == ({}, [])


def test_every_param_kind_round_trips_its_coordinate():
    for param in space().values():
        value = read_point(parsed(SEED), space(), block=True)[param.name]
        x = param.encode(value)
        assert x is not None, param.name
        if param.kind != "int" and param.name != "WEIGHT_DECAY":
            assert param.decode(x) == value, param.name
    assert Param("X", "int", 1, 10, log=True).encode(2.5) is None  # a float is not an int


def ctx(**kw) -> Context:
    return Context(seed_source=SEED, block=True, direction="minimize", **kw)


def test_children_keep_integers_choices_flags_and_bounds():
    op = SampleConstants()
    c = ctx(ranges={"EPOCHS": (5, 50)})
    seen = set()
    for s in range(40):
        child = op.propose([program(SEED)], c, rng(s))
        assert child.operator == "tpe" and child.id == canonical_hash(child.source)
        assert isinstance(module_value(child.source, "EPOCHS"), int)
        assert 5 <= module_value(child.source, "EPOCHS") <= 50
        h = module_value(child.source, "HIDDEN")
        assert isinstance(h, int) and h & (h - 1) == 0 and 8 <= h <= 512
        assert module_value(child.source, "ACTIVATION") in ("relu", "tanh", "gelu")
        assert module_value(child.source, "USE_BIAS") in (True, False)
        assert 0 < module_value(child.source, "DROPOUT") < 1
        assert module_value(child.source, "OFFSET") < 0
        assert module_value(child.source, "SEED") == 7  # never searched
        assert child.source.endswith("FIXED = 3.0\n")  # outside the block: untouched
        seen.add(module_value(child.source, "ACTIVATION"))
    assert seen == {"relu", "tanh", "gelu"}


def history(n: int, best_lr: float, *, seed: int = 0, pending: int = 0) -> tuple[Program, ...]:
    """``n`` evaluated variants of SEED whose loss is the squared log-distance of their
    learning rate from ``best_lr`` (plus ``pending`` programs still being evaluated)."""
    r = np.random.default_rng(seed)
    out = []
    for i in range(n + pending):
        lr = float(f"{10 ** r.uniform(-3, -1):.3g}")
        src = SEED.replace("LEARNING_RATE = 0.01", f"LEARNING_RATE = {lr!r}")
        loss = math.log10(lr / best_lr) ** 2
        done = i < n
        out.append(
            Program(
                id=canonical_hash(src),
                source=src,
                fidelity="f",
                birth=i,
                status="ok" if done else "pending",
                fitness=loss if done else None,
                runs=[SeedRun(seed=0, status="ok", metrics={"loss": loss})] if done else [],
            )
        )
    return tuple(out)


def lr_error(children, best_lr: float) -> float:
    return float(
        np.median(
            [abs(math.log10(module_value(c.source, "LEARNING_RATE") / best_lr)) for c in children]
        )
    )


def test_proposals_concentrate_where_the_history_is_good():
    op = SampleConstants()
    best = 0.03
    cold = [op.propose([program(SEED)], ctx(), rng(s)) for s in range(30)]
    warm_ctx = ctx(history=history(60, best, pending=3))
    warm = [op.propose([program(SEED)], warm_ctx, rng(s)) for s in range(30)]
    assert lr_error(warm, best) < 0.5 * lr_error(cold, best), (
        lr_error(warm, best),
        lr_error(cold, best),
    )


def test_proposals_follow_a_best_at_the_edge_of_the_inferred_range():
    """The seed says 0.01 (so 0.001 .. 0.1 at first); the history's best sits at the top."""
    op = SampleConstants()
    c = ctx(history=history(60, 0.1))
    lrs = [
        module_value(op.propose([program(SEED)], c, rng(s)).source, "LEARNING_RATE")
        for s in range(40)
    ]
    assert max(lrs) > 0.1


def test_failed_programs_are_avoided_and_nothing_to_sample_is_no_child():
    op = SampleConstants()
    good = history(30, 0.003, seed=1)
    crashed = []
    for i, p in enumerate(history(30, 0.003, seed=2)):
        if module_value(p.source, "LEARNING_RATE") > 0.01:  # large rates crash
            crashed.append(
                Program(id=p.id, source=p.source, fidelity="f", birth=100 + i, status="crash")
            )
    c = ctx(history=good + tuple(crashed))
    lrs = [
        module_value(op.propose([program(SEED)], c, rng(s)).source, "LEARNING_RATE")
        for s in range(30)
    ]
    assert np.mean([x > 0.01 for x in lrs]) < 0.3
    with pytest.raises(NoChild):
        op.propose(
            [program("import os\nx = os.getpid()\n")], Context(seed_source="import os\n"), rng(0)
        )


def test_the_operator_is_built_only_when_the_seed_has_constants():
    names = [op.name for op, _ in build_operators({"tpe": 1.0, "constants": 1.0}, ctx())]
    assert names == ["tpe", "constants"]
    plain = Context(seed_source="def f():\n    return 1.5 * 2.0\n")
    assert [op.name for op, _ in build_operators({"tpe": 1.0, "constants": 1.0}, plain)] == [
        "constants"
    ]


def test_tpe_local_stays_in_a_trust_region_around_the_parent():
    """Numbers move within radius x their range's width (on their own scale); choices and
    flags keep the parent's values; a zero on a log scale (weight decay off) stays off."""
    from operators import LocalSampleConstants

    op = LocalSampleConstants()
    s = space()
    lr = s["LEARNING_RATE"]
    reach = 0.1 * math.log10(lr.high / lr.low)  # LOCAL_RADIUS at step scale 1, in decades
    for k in range(30):
        child = op.propose([program(SEED)], ctx(history=history(30, 0.03)), rng(k))
        new_lr = module_value(child.source, "LEARNING_RATE")
        assert abs(math.log10(new_lr / 0.01)) <= reach + 1e-9
        assert module_value(child.source, "ACTIVATION") == "relu"
        assert module_value(child.source, "USE_BIAS") is True
        assert module_value(child.source, "WEIGHT_DECAY") == 0.0
        assert module_value(child.source, "HIDDEN") in (32, 64, 128)
    wide = ctx(history=history(30, 0.03), step_scale=4.0)
    lrs = [
        module_value(op.propose([program(SEED)], wide, rng(k)).source, "LEARNING_RATE")
        for k in range(30)
    ]
    assert max(abs(math.log10(x / 0.01)) for x in lrs) > reach  # the radius scales


def test_tpe_local_models_only_the_parents_neighbourhood():
    """Far trials say nothing about the neighbourhood: with a good region far away and a
    slope near the parent, local proposals follow the slope, not the far optimum."""
    from operators import LocalSampleConstants
    from operators.tpe import _inside, _trust_region

    s = space()
    point = read_point(parsed(SEED), s, block=True)
    region, fixed = _trust_region(s, point, 0.1)
    assert set(fixed) == {"ACTIVATION", "USE_BIAS", "WEIGHT_DECAY"}
    assert _inside(point, region, fixed)
    assert not _inside(dict(point, LEARNING_RATE=0.3), region, fixed)
    assert not _inside(dict(point, ACTIVATION="gelu"), region, fixed)
    # far above the region, everything is better; inside it, lower rates are better
    trials = []
    for i, lr in enumerate(np.geomspace(0.001, 0.1, 60)):
        lr = float(f"{lr:.3g}")
        src = SEED.replace("LEARNING_RATE = 0.01", f"LEARNING_RATE = {lr!r}")
        loss = -1.0 if lr >= 0.03 else (math.log10(lr) + 2.5) ** 2
        trials.append(
            Program(
                id=canonical_hash(src), source=src, fidelity="f", birth=i, status="ok", fitness=loss
            )
        )
    c = ctx(history=tuple(trials))
    lrs = [
        module_value(
            LocalSampleConstants().propose([program(SEED)], c, rng(k)).source, "LEARNING_RATE"
        )
        for k in range(30)
    ]
    globally = [
        module_value(SampleConstants().propose([program(SEED)], c, rng(k)).source, "LEARNING_RATE")
        for k in range(30)
    ]
    assert np.median(globally) > 0.03  # the global model goes to the far region
    assert np.median(lrs) < 0.01  # downhill towards the near optimum, not towards 0.09


@pytest.mark.parametrize(
    "declared",
    [
        {"choices": {"EPOCHS": ("10", "20", "40")}},  # the target's or the run's [choices]
        {"choices": {"FIXED_LR": ("0.01", "0.1")}},
    ],
)
def test_numbers_with_declared_alternatives_take_only_those(declared):
    """A number with declared alternatives is a choice for every operator: tpe writes one of
    them (it used to write the string through the number writer and crash), constants leaves
    it to `choice`."""
    seed = SEED.replace("SEED = 7\n", "SEED = 7\nFIXED_LR = 0.01\n")
    ((name, alts),) = declared["choices"].items()
    c = Context(seed_source=seed, block=True, direction="minimize", **declared)
    ops = dict((op.name, op) for op, _ in build_operators({"tpe": 1, "constants": 1}, c))
    values = set()
    for s in range(30):
        for op in ops.values():
            try:
                child = op.propose([program(seed)], c, rng(s))
            except NoChild:
                continue
            v = module_value(child.source, name)
            assert repr(v) in alts or str(v) in alts, (op.name, v)
            if op.name == "constants":
                assert v == module_value(seed, name)
            values.add(v)
    assert len(values) >= 2  # tpe did draw other alternatives
