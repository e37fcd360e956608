"""Helpers shared by the operators: number sites, statement comparison by ``Unit.same``."""

from __future__ import annotations

import pytest

from operators import ValidationError, validate_child
from operators.llm import change_summary
from operators.parsed import parsed
from operators.sites import elsewhere_sites

SOURCE = """\
import torch


def make_optimizer(params):
    return torch.optim.AdamW(params, lr=0.0031, weight_decay=0.17)
"""


def test_elsewhere_sites_regions_follow_the_labels_of_each_call():
    p = parsed(SOURCE)
    first = elsewhere_sites(p, False, {"make_optimizer": "optimizer"})
    second = elsewhere_sites(p, False, {"make_optimizer": "schedule"})
    assert [s.name for s in first] == ["lr", "weight_decay"]
    assert {s.region for s in first} == {"optimizer"}
    assert {s.region for s in second} == {"schedule"}
    assert [s.name for s in elsewhere_sites(p, False, {"make_optimizer": "optimizer"})] == [
        "lr",
        "weight_decay",
    ]


PARENT = """\
LR = 0.01


def f(x):
    return x * 2


def g(x):
    return x + 1
"""


def test_change_summary_ignores_comments_and_names_real_changes():
    cosmetic = PARENT.replace("return x * 2", "return x*2  # doubled")
    assert change_summary(PARENT, cosmetic) == "reformatted"
    child = cosmetic.replace("return x + 1", "return x + 2") + "\n\nH = 1\n"
    child = child.replace("LR = 0.01\n", "")
    assert change_summary(PARENT, child) == "changed g; added H; removed LR"


def test_protected_allows_cosmetic_edits_and_rejects_removal():
    cosmetic = PARENT.replace("return x * 2", "return x*2  # doubled").replace("0.01", "0.02")
    assert validate_child(cosmetic, PARENT, block=False, protected=("f",))
    removed = PARENT.replace("def f(x):\n    return x * 2\n", "")
    with pytest.raises(ValidationError, match="protected statement 'f'"):
        validate_child(removed, PARENT, block=False, protected=("f",))
