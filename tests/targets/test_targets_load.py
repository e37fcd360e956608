"""Every shipped target folder loads through evo.target.load_target."""

from __future__ import annotations

from pathlib import Path

from targets_testkit import TARGETS

from evo.target import load_target


def test_tinygpt_loads_with_three_fidelities():
    t = load_target(TARGETS / "tinygpt")
    assert (t.evolve, t.harness, t.metric, t.direction) == (
        "train.py",
        ("harness.py",),
        "val_bpb",
        "minimize",
    )
    assert set(t.fidelities) == {"tiny", "small", "full"} and t.default_fidelity == "tiny"
    assert t.fidelity("tiny").env["TINYGPT_BUDGET_TOKENS"] == "300000"
    assert t.fidelity("full").env["TINYGPT_BUDGET_SECONDS"] == "300"
    assert t.choices["ACTIVATION"] == ("gelu", "relu", "silu")
    source = t.seed_source()
    for name in t.ranges:  # every ranged constant exists in the seed, inside its range
        line = next(ln for ln in source.splitlines() if ln.startswith(f"{name} = "))
        value = float(line.split("=", 1)[1].split("#", 1)[0])
        assert t.ranges[name][0] <= value <= t.ranges[name][1], name
    assert 'ACTIVATION = "gelu"  # evo: choice(gelu, relu, silu)' in source
    for region in ("model", "optimizer", "schedule", "data"):
        assert f"# evo: region={region}" in source


def test_circle_packing_loads():
    t = load_target(TARGETS / "circle_packing")
    assert (t.evolve, t.metric, t.direction) == ("pack.py", "sum_radii", "maximize")
    assert t.argv(t.fidelity(None))[1:] == ["harness.py"]
    source = t.seed_source()
    for name in t.ranges:
        assert f"\n{name} = " in source, name


def test_function_minimization_loads_as_openevolve_block_target():
    t = load_target(TARGETS / "function_minimization")
    assert (t.evolve, t.metric, t.direction, t.block) == (
        "initial_program.py",
        "combined_score",
        "maximize",
        True,
    )
    assert t.harness == ("evaluator.py",)
    assert "global minimum" in t.description


def test_plain_dict_fixture_loads():
    t = load_target(Path(__file__).resolve().parent / "fixtures/oe_dict")
    assert t.block and t.harness == ("evaluator.py",)
