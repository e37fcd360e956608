"""Edit descriptors: region labels, edit size and its bins, changed constants."""

from __future__ import annotations

import pytest
from ops_testkit import FIXTURES

from operators import edit_descriptors, regions, size_bin

TRAIN = (FIXTURES / "train600.py").read_text()


def test_region_comment_labels_the_statement_directly_below():
    r = regions(TRAIN)
    assert r["setup_optimizer"] == "optimizer" and r["MuonAdamW"] == "optimizer"
    assert r["CausalSelfAttention"] == "attention" and r["get_lr_multiplier"] == "schedule"
    # unlabelled: a def keeps its own name, a constant is "constants", setup code is "main"
    assert r["has_value_embedding"] == "has_value_embedding"
    assert r["DEPTH"] == "constants" and r["POLAR_EXPRESS_COEFFS"] == "constants"
    assert r["import:import torch"] == "imports"
    assert r["<While>"] == "main" and r["config"] == "main"


def test_a_label_does_not_spread_past_its_statement():
    source = "# evo: region=opt\ndef step():\n    pass\n\n\ndef other():\n    pass\nLR = 0.1\n"
    assert regions(source) == {"step": "opt", "other": "other", "LR": "constants"}


@pytest.mark.parametrize(
    ("size", "expected"), [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4), (100, 7)]
)
def test_size_bins_are_log2(size, expected):
    assert size_bin(size) == expected


def test_one_constant_changed():
    d = edit_descriptors(TRAIN.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.05"), TRAIN)
    assert (d.regions, d.region, d.size, d.size_bin, d.constants) == (
        ("constants",),
        "constants",
        1,
        1,
        ("MATRIX_LR",),
    )
    assert d.to_dict() == {
        "region": "constants",
        "edit_size": 1,
        "edit_size_bin": 1,
        "constants": ["MATRIX_LR"],
    }


def test_no_change_and_cosmetic_change_are_none():
    for child in (TRAIN, TRAIN.replace("# model shape", "# the model's shape")):
        d = edit_descriptors(child, TRAIN)
        assert (d.region, d.size, d.size_bin, d.constants) == ("none", 0, 0, ())


def test_a_literal_inside_a_function_counts_one_node_in_its_region():
    d = edit_descriptors(TRAIN.replace("(1 - frac) * 0.85", "(1 - frac) * 0.8"), TRAIN)
    assert (d.region, d.size, d.constants) == ("schedule", 1, ())


def test_a_replaced_subtree_counts_the_larger_side():
    child = TRAIN.replace("frac * MUON_MOMENTUM", "frac * MUON_MOMENTUM * 0.5")
    d = edit_descriptors(child, TRAIN)
    # BinOp(frac, Mult, M) -> BinOp(BinOp(frac, Mult, M), Mult, 0.5): the left operand
    # Name(frac) is replaced by a 4-node BinOp (4), and the right Name(M) by a Constant (1)
    assert d.region == "schedule" and d.size == 5 and d.size_bin == 3


def test_edits_in_two_regions_are_multi():
    child = TRAIN.replace("DEPTH = 8", "DEPTH = 10").replace(
        "    p.mul_(1 - lr * wd)\n    exp_avg", "    p.mul_(1 - 2 * lr * wd)\n    exp_avg"
    )
    d = edit_descriptors(child, TRAIN)
    assert d.regions == ("constants", "optimizer") and d.region == "multi"
    assert d.constants == ("DEPTH",)


def test_inserting_a_line_counts_that_line_not_the_rest_of_the_function():
    child = TRAIN.replace(
        "        x = norm(x)\n        x0 = x\n",
        "        x = norm(x)\n        x = x * 2.0\n        x0 = x\n",
    )
    d = edit_descriptors(child, TRAIN)
    # Assign(targets=[Name], value=BinOp(Name, Mult, Constant)): 6 nodes without contexts
    assert d.region == "model" and d.size == 6 and d.size_bin == 3


def test_new_and_removed_statements():
    added = TRAIN + "\n\ndef extra(x):\n    return x + 1\n"
    d = edit_descriptors(added, TRAIN)
    assert d.region == "extra" and d.size > 5
    removed = TRAIN.replace("DROPOUT = 0.0\n", "")
    d = edit_descriptors(removed, TRAIN)
    assert d.constants == ("DROPOUT",) and d.region == "constants" and d.size == 3
    labelled = TRAIN + "\n\n# evo: region=optimizer\ndef extra(x):\n    return x + 1\n"
    assert edit_descriptors(labelled, TRAIN).region == "optimizer"
