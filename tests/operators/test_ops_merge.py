"""The 3-way merge: it gives back each parent when the other made no edit, and stacks
independent edits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testkit import FIXTURES, module_value, program

from operators import (
    Context,
    MutateChoice,
    MutateConstants,
    NoChild,
    ThreeWayMerge,
    canonical_hash,
    three_way_merge,
)

SEED = (FIXTURES / "train600.py").read_text()
CTX = Context(seed_source=SEED)
PROPS = settings(max_examples=10, deadline=None, database=None)

# two hand edits in different statements: a function body and a constant
EDIT_FN = (
    "    return WEIGHT_DECAY * (1 - progress)\n",
    "    return WEIGHT_DECAY * (1 - progress) ** 2\n",
)
EDIT_CONST = ("GRAD_CLIP = 1.0\n", "GRAD_CLIP = 0.5\n")


def _edit(source: str, edit: tuple[str, str]) -> str:
    assert edit[0] in source
    return source.replace(edit[0], edit[1])


def _mutant(seed: int) -> str:
    return MutateConstants().propose([program(SEED)], CTX, np.random.default_rng(seed)).source


@PROPS
@given(seed=st.integers(0, 2**32 - 1))
def test_merge_with_an_unedited_side_gives_back_the_other(seed):
    rng = np.random.default_rng(seed)
    a = _mutant(seed)
    # B made no edit (a comment-only change is no edit): the result is A, byte for byte
    for b in (SEED, SEED.replace("# model shape", "# shape of the model")):
        assert three_way_merge(a, b, SEED, rng=rng).source == a
    # A made no edit: the result is B
    merged = three_way_merge(SEED, a, SEED, rng=rng)
    assert canonical_hash(merged.source) == canonical_hash(a)


@PROPS
@given(seed=st.integers(0, 2**32 - 1))
def test_independent_edits_are_stacked(seed):
    rng = np.random.default_rng(seed)
    a = MutateConstants().propose([program(SEED)], CTX, rng).source
    b = MutateChoice().propose([program(SEED)], CTX, rng).source
    b = _edit(b, EDIT_FN)
    child = ThreeWayMerge(on_conflict="reject").propose([program(a), program(b)], CTX, rng)
    expected = _edit(a, EDIT_FN)
    for name in ("ACTIVATION", "WINDOW_PATTERN"):
        expected = expected.replace(
            f"{name} = {module_value(a, name)!r}".replace("'", '"'),
            f"{name} = {module_value(b, name)!r}".replace("'", '"'),
        )
    assert canonical_hash(child.source) == canonical_hash(expected)
    assert child.parents == (canonical_hash(a), canonical_hash(b))


def test_merge_of_two_hand_edits_holds_both_and_keeps_a_formatting():
    a = _edit(SEED, EDIT_CONST)
    b = _edit(SEED, EDIT_FN).replace(
        "# evo: region=schedule\ndef get_weight_decay",
        "# evo: region=schedule (B's comment)\ndef get_weight_decay",
    )
    child = ThreeWayMerge().propose([program(a), program(b)], CTX, np.random.default_rng(0))
    assert child.source == _edit(_edit(SEED, EDIT_CONST), EDIT_FN).replace(
        "# evo: region=schedule\ndef get_weight_decay",
        "# evo: region=schedule (B's comment)\ndef get_weight_decay",
    )
    assert child.description == "merge B onto A: took get_weight_decay"


def test_conflicts_are_rejected_or_resolved_at_random():
    a = SEED.replace("GRAD_CLIP = 1.0", "GRAD_CLIP = 0.5").replace("DEPTH = 8", "DEPTH = 10")
    b = SEED.replace("GRAD_CLIP = 1.0", "GRAD_CLIP = 2.0")
    with pytest.raises(NoChild, match="conflict in 'GRAD_CLIP'"):
        ThreeWayMerge(on_conflict="reject").propose(
            [program(a), program(b)], CTX, np.random.default_rng(0)
        )
    seen = set()
    for seed in range(20):
        try:
            child = ThreeWayMerge().propose(
                [program(a), program(b)], CTX, np.random.default_rng(seed)
            )
            seen.add(module_value(child.source, "GRAD_CLIP"))
            assert module_value(child.source, "DEPTH") == 10
            assert "conflicts: GRAD_CLIP (B)" in child.description
        except NoChild as e:  # picking A's side gives back A
            assert "add nothing" in e.reason
            seen.add(0.5)
    assert seen == {0.5, 2.0}


def test_statements_added_and_removed_in_b():
    a = _edit(SEED, EDIT_CONST)
    helper = "\n\ndef weight_decay_floor(x):\n    return max(x, 1e-4)\n"
    anchor = "    return WEIGHT_DECAY * (1 - progress)\n"
    b = SEED.replace(anchor, anchor + helper).replace("DROPOUT = 0.0\n", "")
    result = three_way_merge(a, b, SEED, rng=np.random.default_rng(0))
    assert result.source.index("def weight_decay_floor") > result.source.index(
        "def get_weight_decay"
    )
    assert result.source.index("def weight_decay_floor") < result.source.index("def clip_gradients")
    assert "DROPOUT" not in result.source and "GRAD_CLIP = 0.5" in result.source
    assert set(result.taken) == {"+weight_decay_floor", "-DROPOUT"}


def test_the_ancestor_defaults_to_the_seed_and_can_be_given():
    mid = SEED.replace("GRAD_CLIP = 1.0", "GRAD_CLIP = 0.5")
    a = mid.replace("DEPTH = 8", "DEPTH = 10")
    b = mid.replace("NS_STEPS = 5", "NS_STEPS = 6")
    ctx = Context(seed_source=SEED, ancestor_source=mid)
    child = ThreeWayMerge(on_conflict="reject").propose(
        [program(a), program(b)], ctx, np.random.default_rng(0)
    )
    assert child.source == a.replace("NS_STEPS = 5", "NS_STEPS = 6")


def test_bad_conflict_policy_is_refused():
    with pytest.raises(ValueError, match="on_conflict"):
        ThreeWayMerge(on_conflict="ours")
