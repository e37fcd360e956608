"""Validation and canonical form: syntax errors, the evolve block, no-ops and duplicates."""

from __future__ import annotations

import io
import tokenize

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testkit import FIXTURES

from operators import (
    ValidationError,
    canonical_hash,
    canonical_source,
    is_duplicate,
    parse,
    validate_child,
)

TRAIN = (FIXTURES / "train600.py").read_text()
PACK = (FIXTURES / "block_pack.py").read_text()


def test_syntax_error_is_one_line_with_the_line_number():
    with pytest.raises(ValidationError) as e:
        parse("x = 1\ndef f(:\n    pass\n")
    assert str(e.value).startswith("syntax error at line 2: ")
    assert "\n" not in str(e.value) and e.value.kind == "syntax"
    with pytest.raises(ValidationError, match="syntax error at line 3"):
        validate_child("a = 1\nb = 2\nc = (\n", "a = 1\n", block=False)
    with pytest.raises(ValidationError, match="syntax error"):
        canonical_hash("x = 1\x00\n")


def test_parse_keeps_the_source_and_caches_it():
    module = parse(TRAIN)
    assert module.code == TRAIN
    assert parse(TRAIN) is module


@pytest.mark.parametrize(
    "variant",
    [
        "LR = 0.003\n\n\ndef f(x):\n    '''Doc.'''\n    return x * LR\n",
        "LR=3e-3  # the rate\ndef f(x):\n    return (x*LR)\n",
        '# header\nLR = 0.0030\n\ndef f(x):\n    """Another docstring."""\n    # why\n    return x * LR\n',
    ],
)
def test_cosmetic_variants_share_the_canonical_hash(variant):
    base = "LR = 0.003\ndef f(x):\n    return x * LR\n"
    assert canonical_source(variant) == canonical_source(base)
    assert canonical_hash(variant) == canonical_hash(base)


def test_real_changes_change_the_canonical_hash():
    base = "LR = 0.003\ndef f(x):\n    return x * LR\n"
    for other in (
        "LR = 0.004\ndef f(x):\n    return x * LR\n",
        "LR = 0.003\ndef f(x):\n    return x + LR\n",
        "LR = 0.003\ndef f(y):\n    return y * LR\n",
        "LR = 0.003\ndef f(x):\n    s = 'not a docstring'\n    return x * LR\n",
    ):
        assert canonical_hash(other) != canonical_hash(base)


def _string_interior_lines(source: str) -> set[int]:
    """Lines inside multi-line string tokens: a comment inserted there would change a string."""
    inside = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
            inside.update(range(tok.start[0] + 1, tok.end[0] + 1))
    return inside


@settings(max_examples=25, deadline=None, database=None)
@given(data=st.data())
def test_comment_and_whitespace_edits_are_caught_as_duplicates(data):
    source = data.draw(st.sampled_from([TRAIN, PACK]))
    lines = source.splitlines(keepends=True)
    forbidden = _string_interior_lines(source)
    allowed = [i for i in range(1, len(lines) + 1) if i not in forbidden]
    edits = data.draw(
        st.lists(
            st.tuples(st.sampled_from(allowed), st.sampled_from(["comment", "blank", "trailing"])),
            min_size=1,
            max_size=6,
        )
    )
    for line_no, kind in sorted(edits, reverse=True):
        line = lines[line_no - 1]
        indent = line[: len(line) - len(line.lstrip())]
        if kind == "comment":
            lines.insert(line_no - 1, f"{indent}# a note that changes nothing\n")
        elif kind == "blank":
            lines.insert(line_no - 1, "\n")
        else:
            lines[line_no - 1] = line.rstrip("\n") + "   \n"
    child = "".join(lines)
    assert child != source
    assert canonical_hash(child) == canonical_hash(source)
    with pytest.raises(ValidationError, match="no-op") as e:
        validate_child(child, source, block=False)
    assert e.value.kind == "noop"


def test_is_duplicate_checks_the_set_of_evaluated_ids():
    seen = {canonical_hash(TRAIN)}
    assert is_duplicate(canonical_hash(TRAIN.replace("# model shape", "# shape")), seen)
    assert not is_duplicate(canonical_hash(TRAIN.replace("DEPTH = 8", "DEPTH = 9")), seen)


def test_validate_child_returns_the_child_id():
    child = TRAIN.replace("DEPTH = 8", "DEPTH = 12")
    assert validate_child(child, TRAIN, block=False) == canonical_hash(child)


def test_block_edits_inside_pass_and_outside_fail():
    inside = PACK.replace("STEPS = 200", "STEPS = 300")
    assert validate_child(inside, PACK, block=True) == canonical_hash(inside)
    outside = PACK.replace("return float(radii.sum())", "return float(radii.sum()) * 2")
    with pytest.raises(ValidationError, match=r"edit outside the evolve block at line \d+") as e:
        validate_child(outside, PACK, block=True)
    assert e.value.kind == "outside_block"
    before = PACK.replace("import math\n", "import math\nimport os\n")
    with pytest.raises(ValidationError, match="outside the evolve block"):
        validate_child(before, PACK, block=True)
    # the same edit is fine when the whole file evolves
    assert validate_child(outside, PACK, block=False)


def test_block_markers_must_stay():
    for removed in ("# EVOLVE-BLOCK-START\n", "# EVOLVE-BLOCK-END\n"):
        child = PACK.replace(removed, "").replace("STEPS = 200", "STEPS = 300")
        with pytest.raises(ValidationError, match="markers") as e:
            validate_child(child, PACK, block=True)
        assert e.value.kind == "markers"
    with pytest.raises(ValidationError, match="no EVOLVE-BLOCK-START"):
        validate_child("x = 2\n", "x = 1\n", block=True)


def test_protected_statements_must_not_change():
    child = TRAIN.replace("return WEIGHT_DECAY * (1 - progress)", "return WEIGHT_DECAY")
    with pytest.raises(ValidationError, match="protected statement 'get_weight_decay'") as e:
        validate_child(child, TRAIN, block=False, protected=("get_weight_decay",))
    assert e.value.kind == "protected"
    assert validate_child(child, TRAIN, block=False, protected=("summarize",))
