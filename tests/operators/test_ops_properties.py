"""Property tests of the structural operators on the fixtures and the real targets' seeds.

Over many rng seeds: every child parses, differs canonically from its parent exactly in the
way its description claims, and leaves the text outside the evolve block untouched.
"""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testkit import (
    Case,
    cases,
    changed_names,
    check_value_claims,
    module_value,
    outside_block,
    program,
    top_level,
)

from operators import (
    MutateChoice,
    MutateConstants,
    NoChild,
    SampleConstants,
    ThreeWayMerge,
    ToggleFlag,
    UniformCrossover,
    canonical_hash,
    check_context,
    edit_descriptors,
    infer_space,
    parse,
    validate_child,
)

CASES = {c.name: c for c in cases()}
SEEDS = st.integers(0, 2**32 - 1)
PROPS = settings(max_examples=15, deadline=None, database=None)


def _common(case: Case, parent: str, child) -> None:
    ast.parse(child.source)
    assert canonical_hash(child.source) != canonical_hash(parent)
    assert child.id == canonical_hash(child.source)
    # the module an operator seeded into the parse cache is the child's, byte for byte
    assert parse(child.source).code == child.source
    assert validate_child(child.source, parent, block=case.context.block) == child.id
    if case.context.block:
        assert outside_block(child.source) == outside_block(case.context.seed_source)
    d = edit_descriptors(child.source, case.context.seed_source)
    is_seed = child.id == canonical_hash(case.context.seed_source)
    assert (d.size == 0 and d.region == "none") == is_seed


def _parent(case: Case, rng: np.random.Generator) -> str:
    """The seed, or a child of it (so operators also see parents that are not the seed)."""
    source = case.context.seed_source
    if rng.random() < 0.5:
        try:
            source = MutateConstants().propose([program(source)], case.context, rng).source
        except NoChild:
            pass
    return source


def _claimed_match(claimed: set[str], parent: str, child: str) -> None:
    changed = changed_names(parent, child)
    base = {k.split("#")[0] for k in claimed}
    assert {k for k in changed if not k.startswith("<")} == {
        k for k in base if not k.startswith("<")
    }
    assert len(changed) == len(base)


def test_every_case_passes_check_context():
    assert {"train600", "block_pack"} <= set(CASES)
    for case in CASES.values():
        check_context(case.context)


@pytest.mark.parametrize("name", sorted(CASES))
@PROPS
@given(seed=SEEDS)
def test_constants_children_change_the_literals_they_name(name, seed):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    parent = _parent(case, rng)
    child = MutateConstants().propose([program(parent)], case.context, rng)
    _common(case, parent, child)
    assert child.operator == "constants" and child.parents == (canonical_hash(parent),)
    _claimed_match(
        check_value_claims(child.description, parent, child.source), parent, child.source
    )
    for name, (lo, hi) in case.context.ranges.items():
        assert lo <= module_value(child.source, name) <= hi


@pytest.mark.parametrize("name", sorted(CASES))
@PROPS
@given(seed=SEEDS)
def test_tpe_children_rewrite_the_constants_they_name(name, seed):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    parent = _parent(case, rng)
    try:
        child = SampleConstants().propose([program(parent)], case.context, rng)
    except NoChild as e:
        c = case.context
        if not infer_space(c.seed_source, c.ranges, c.choices, c.block):
            assert "none of the seed's constants" in e.reason
        else:
            assert "proposed the parent's own values" in e.reason  # a tiny space can repeat
        return
    _common(case, parent, child)
    assert child.operator == "tpe" and child.parents == (canonical_hash(parent),)
    claims = [c for c in child.description.split("; ") if "'" in c or "choice(" not in c]
    claimed = check_value_claims("; ".join(claims), parent, child.source)
    assert claimed <= {n for n, _ in top_level(parent)}
    for name, (lo, hi) in case.context.ranges.items():
        assert lo <= module_value(child.source, name) <= hi
        assert type(module_value(child.source, name)) is type(module_value(parent, name))


@pytest.mark.parametrize("name", sorted(CASES))
@PROPS
@given(seed=SEEDS)
def test_choice_children_swap_to_a_declared_alternative(name, seed):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    parent = _parent(case, rng)
    try:
        child = MutateChoice().propose([program(parent)], case.context, rng)
    except NoChild:
        assert "choice(" not in case.context.seed_source and not case.context.choices
        return
    _common(case, parent, child)
    claimed = check_value_claims(child.description, parent, child.source)
    _claimed_match(claimed, parent, child.source)
    (name,) = claimed
    line = next(x for x in case.context.seed_source.splitlines() if x.startswith(name + " ="))
    alts = case.context.choices.get(name) or re.search(r"choice\((.*)\)", line)[1].split(", ")
    assert module_value(child.source, name) in alts


@pytest.mark.parametrize("name", sorted(CASES))
@PROPS
@given(seed=SEEDS)
def test_toggle_children_flip_drop_or_duplicate(name, seed):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    parent = _parent(case, rng)
    try:
        child = ToggleFlag().propose([program(parent)], case.context, rng)
    except NoChild:
        assert not case.context.droppable
        assert not re.search(r"^[A-Z_0-9]+ = (True|False)", case.context.seed_source, re.M)
        return
    _common(case, parent, child)
    action, _, key = child.description.partition(" ")
    names_before = [n for n, _ in top_level(parent)]
    names_after = [n for n, _ in top_level(child.source)]
    if action == "drop":
        assert key in case.context.droppable
        assert names_after.count(key) == names_before.count(key) - 1
    elif action == "duplicate":
        assert key in case.context.droppable
        assert names_after.count(key) == names_before.count(key) + 1
    else:
        claimed = check_value_claims(child.description, parent, child.source)
        _claimed_match(claimed, parent, child.source)
        assert isinstance(module_value(child.source, claimed.pop()), bool)


def _two_parents(case: Case, rng: np.random.Generator) -> tuple[str, str]:
    ops = [MutateConstants(), MutateChoice(), ToggleFlag()]
    out = []
    for _ in range(2):
        source = case.context.seed_source
        for _ in range(int(rng.integers(1, 4))):
            try:
                source = (
                    ops[int(rng.integers(3))].propose([program(source)], case.context, rng).source
                )
            except NoChild:
                pass
        out.append(source)
    return out[0], out[1]


@pytest.mark.parametrize("name", sorted(CASES))
@PROPS
@given(seed=SEEDS)
def test_uniform_crossover_takes_each_constant_from_a_parent(name, seed):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    a, b = _two_parents(case, rng)
    try:
        child = UniformCrossover().propose([program(a), program(b)], case.context, rng)
    except NoChild as e:
        assert "do not differ" in e.reason or "equals parent B" in e.reason
        return
    _common(case, a, child)
    assert child.parents == (canonical_hash(a), canonical_hash(b))
    names = re.match(r"from B: (.*) \(\d+ of \d+ differing constants\)$", child.description)[1]
    taken = [part.split("=")[0] for part in re.split(r", (?=[A-Z_0-9]+=)", names)]
    for name in taken:
        assert module_value(child.source, name) == module_value(b, name)
    assert changed_names(a, child.source) == set(taken)


@pytest.mark.parametrize("name", sorted(CASES))
@PROPS
@given(seed=SEEDS)
def test_merge_children_are_made_of_the_parents_statements(name, seed):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    a, b = _two_parents(case, rng)
    try:
        child = ThreeWayMerge().propose([program(a), program(b)], case.context, rng)
    except NoChild as e:
        assert "add nothing" in e.reason or "equals parent B" in e.reason
        return
    _common(case, a, child)
    assert canonical_hash(child.source) != canonical_hash(b)
    from_parents = set(top_level(a)) | set(top_level(b))
    assert set(top_level(child.source)) <= from_parents
