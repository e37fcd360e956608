"""Sources that are not spliced by statement chunks: no trailing newline, CRLF, semicolons."""

from __future__ import annotations

import numpy as np
import pytest
from ops_testkit import check_value_claims, program

from operators import Context, MutateConstants, ToggleFlag, parse, three_way_merge


@pytest.mark.parametrize(
    "source",
    [
        "LR = 0.1\nDEPTH = 4\nUSE = True",
        "LR = 0.1\r\nDEPTH = 4\r\nUSE = True\r\n",
        "# evo: region=x\nLR = 0.1; B = 2\nUSE = True\n\n\n# trailing comment\n",
    ],
    ids=["no-final-newline", "crlf", "semicolons"],
)
def test_children_keep_the_layout_of_odd_sources(source):
    ctx = Context(seed_source=source)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        for op in (MutateConstants(), ToggleFlag()):
            child = op.propose([program(source)], ctx, rng)
            assert parse(child.source).code == child.source
            check_value_claims(child.description, source, child.source)
            newline = "\r\n" if "\r\n" in source else "\n"
            assert child.source.count(newline) == source.count(newline)
        a = MutateConstants().propose([program(source)], ctx, np.random.default_rng(seed))
        merged = three_way_merge(a.source, source, source, rng=rng)
        assert merged.source == a.source
