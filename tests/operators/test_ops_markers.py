"""EVOLVE-BLOCK markers: comments count, strings do not; bad markers are one-line errors."""

from __future__ import annotations

import pytest

import operators
from operators import Context, OperatorConfigError, ValidationError, check_context, validate_child
from operators.parsed import parsed
from operators.statements import block_spans, units

START, END = "# EVOLVE-BLOCK-START", "# EVOLVE-BLOCK-END"

QUOTED = f'''"""Docs that quote the markers.

{END}
"""
FIXED = 1  # fixed by the problem
{START}
RATE = 0.5
NOTE = """
{END}
"""
STEPS = 10
{END}
LIMIT = "{START}"
'''
"""Marker words in the module docstring, in a string inside the block and after it: only the
two comment lines (6 and 12) are markers."""


def test_marker_words_inside_strings_do_not_count():
    assert block_spans(parsed(QUOTED)) == [(6, 12)]
    child = QUOTED.replace("STEPS = 10", "STEPS = 20")  # below the quoted END: still inside
    assert validate_child(child, QUOTED, block=True)
    outside = QUOTED.replace("FIXED = 1", "FIXED = 2")
    with pytest.raises(ValidationError, match="outside the evolve block at line 5"):
        validate_child(outside, QUOTED, block=True)
    inside = {u.key for u in units(parsed(QUOTED)) if u.in_block}
    assert inside == {"RATE", "NOTE", "STEPS"}
    only_quoted = '"""See EVOLVE-BLOCK-START and EVOLVE-BLOCK-END in the docs."""\nX = 1\n'
    assert block_spans(parsed(only_quoted)) == []


def test_a_marker_in_a_comment_after_code_counts_and_its_line_stays_outside():
    source = f"A = 1  {START}\nB = 2\n{END}\n"
    assert block_spans(parsed(source)) == [(1, 3)]
    assert [u.key for u in units(parsed(source)) if u.in_block] == ["B"]


def test_line_numbers_are_the_parsers_even_with_a_form_feed():
    source = f"# page one\x0c page two\nFIXED = 1\n{START}\nRATE = 0.5\n{END}\n"
    assert [u.key for u in units(parsed(source)) if u.in_block] == ["RATE"]
    with pytest.raises(ValidationError, match="at line 2 "):
        validate_child(source.replace("FIXED = 1", "FIXED = 2"), source, block=True)


BAD = {
    "start without end": (
        f"X = 1\n{START}\nY = 2\n",
        "EVOLVE-BLOCK-START at line 2 has no EVOLVE-BLOCK-END after it",
    ),
    "end before start": (
        f"{END}\nX = 1\n{START}\n",
        r"EVOLVE-BLOCK-END at line 1 comes before EVOLVE-BLOCK-START \(line 3\)",
    ),
    "end alone": (f"X = 1\n{END}\n", "EVOLVE-BLOCK-END at line 2 comes before any"),
    "nested": (
        f"{START}\nX = 1\n{START}\nY = 2\n{END}\n{END}\n",
        "EVOLVE-BLOCK-START at line 3 is inside the block opened at line 1",
    ),
    "two blocks": (
        f"{START}\nX = 1\n{END}\nY = 2\n{START}\nZ = 3\n{END}\n",
        "a second EVOLVE-BLOCK-START at line 5 \\(the block at lines 1-3",
    ),
    "second end": (
        f"{START}\nX = 1\n{END}\nY = 2\n{END}\n",
        "a second EVOLVE-BLOCK-END at line 5",
    ),
    "both in one comment": (
        "# EVOLVE-BLOCK-START EVOLVE-BLOCK-END\nX = 1\n",
        "line 1 holds both",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_markers_are_one_line_errors_naming_the_lines(case):
    source, message = BAD[case]
    with pytest.raises(ValidationError, match=message) as e:
        block_spans(parsed(source))
    assert e.value.kind == "markers" and "\n" not in str(e.value)
    with pytest.raises(ValidationError, match=message):
        operators.block_span(source)  # the rules evo.target checks a seed with
    # a block target's seed is refused with the same line when a run starts
    with pytest.raises(OperatorConfigError, match="seed: " + message):
        check_context(Context(seed_source=source, block=True))
    # the whole file evolves when the target is not a block target: markers are comments
    assert all(not u.in_block for u in units(parsed(source)))
