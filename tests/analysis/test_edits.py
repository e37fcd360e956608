"""Per-statement edits: every subset of them composes into a program that has exactly those
edits, including statements the program added or removed."""

from __future__ import annotations

import itertools

import pytest

from analysis import AnalysisError, edit_set
from operators import canonical_source

SEED = '''"""Module doc."""

A = 1  # kept
B = 2  # removed by the program


def f():
    return A


print(f())
'''

PROGRAM = '''"""Module doc, reworded."""

A = 1  # kept


def f():
    return A + 1


C = 3  # added by the program
print(f())
'''


def test_every_subset_of_edits_composes_exactly():
    es = edit_set(SEED, PROGRAM)
    assert sorted((e.key, e.kind) for e in es.edits) == [
        ("B", "removed"),
        ("C", "added"),
        ("f", "changed"),
    ]
    assert {e.summary for e in es.edits} == {"removes B", "adds C = 3", "changes f (+1/-1 lines)"}
    keys = [e.key for e in es.edits]
    for n in range(len(keys) + 1):
        for subset in itertools.combinations(keys, n):
            src = es.compose(set(subset))
            compile(src, "<composed>", "exec")
            assert sorted(e.key for e in edit_set(SEED, src).edits) == sorted(subset)
    assert canonical_source(es.compose(set())) == canonical_source(SEED)
    assert canonical_source(es.compose(set(keys))) == canonical_source(PROGRAM)
    # a removed statement that comes back returns to its place, after A
    assert es.compose({"f", "C"}).index("B = 2") < es.compose({"f", "C"}).index("def f")


def test_unparsable_program_is_an_analysis_error():
    with pytest.raises(AnalysisError, match="cannot split the program into edits"):
        edit_set(SEED, "def broken(:\n")
