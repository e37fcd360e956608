"""Splicing statement chunks (``render_body``) gives exactly the text libcst generates."""

from __future__ import annotations

import libcst as cst
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testkit import cases

from operators.base import render_body, replace_statements
from operators.parsed import Parsed

ODD = {
    "no-final-newline": "LR = 0.1\nDEPTH = 4\nUSE = True",
    "crlf": "LR = 0.1\r\nDEPTH = 4\r\n\r\ndef f():\r\n    return 1\r\n",
    "semicolons": "# evo: region=x\nLR = 0.1; B = 2\nUSE = True\n\n\n# trailing comment\n",
    "footer-no-final-newline": "# top\nLR = 0.1\n\n# lead\nDEPTH = 4\n# end",
    "header-quotes-body": "# x = 1\nx = 1\n",
    "tabs": "def f():\n\tif True:\n\t\treturn 1\n\n\n# g\ndef g():\n\treturn 2\n",
}
SOURCES = {**{c.name: c.context.seed_source for c in cases()}, **ODD}
ACTIONS = ("drop", "drop_to_footer", "duplicate", "swap", "comment_footer")
PROPS = settings(max_examples=25, deadline=None, database=None)


def variant(module: cst.Module, i: int, action: str):
    """A new body (and footer, or None) made from ``module`` as the operators make them."""
    body = list(module.body)
    footer = None
    if action == "duplicate":
        body.insert(i + 1, body[i].with_changes(leading_lines=()))
    elif action == "swap":
        body[i - 1], body[i] = body[i], body[i - 1]
    elif action in ("drop", "drop_to_footer"):
        kept = tuple(body.pop(i).leading_lines)
        if action == "drop" and kept and i < len(body):
            body[i] = body[i].with_changes(leading_lines=kept + tuple(body[i].leading_lines))
        elif kept or action == "drop_to_footer":
            footer = kept + tuple(module.footer)
    else:
        footer = (*module.footer, cst.EmptyLine(comment=cst.Comment("# appended")))
    return body, footer


@pytest.mark.parametrize("name", sorted(SOURCES))
@PROPS
@given(data=st.data())
def test_render_body_splices_the_text_libcst_generates(name, data):
    p = Parsed(SOURCES[name])  # not the shared cache: render_body seeds it with children
    module = p.module
    i = data.draw(st.integers(0, len(module.body) - 1), label="statement")
    action = data.draw(st.sampled_from(ACTIONS), label="action")
    body, footer = variant(module, i, action)
    expected = module.with_changes(
        body=body, footer=module.footer if footer is None else footer
    ).code
    assert render_body(p, body, footer) == expected


@pytest.mark.parametrize("name", sorted(ODD))
def test_render_body_of_every_edit_of_odd_sources(name):
    p = Parsed(ODD[name])
    module = p.module
    for i in range(len(module.body)):
        for action in ACTIONS:
            body, footer = variant(module, i, action)
            expected = module.with_changes(
                body=body, footer=module.footer if footer is None else footer
            ).code
            assert render_body(p, body, footer) == expected, (i, action)


def test_render_body_of_an_empty_result_is_the_module_code():
    p = Parsed("x = 1\n")
    assert render_body(p, []) == p.module.with_changes(body=()).code == "\n"


def test_a_header_comment_quoting_the_body_is_not_taken_for_it():
    p = Parsed("# x = 1\nx = 1\n")
    assert p.layout.header == "# x = 1\n"
    child = replace_statements(p, {0: cst.parse_statement("x = 2\n")})
    assert child == "# x = 1\nx = 2\n"
