"""EVOLVE-BLOCK markers: which comments count, and the rules a program's markers must obey.

A marker is a ``#`` comment whose text contains ``EVOLVE-BLOCK-START`` or ``EVOLVE-BLOCK-END``,
found with :mod:`tokenize`: the same words inside a string or a docstring are text, not a
marker. A comment after code on the same line counts too, as it does for OpenEvolve; the line
holding a marker is outside the block either way.

A program has no markers (the whole file evolves) or one block: a START line, later one END
line. Anything else (START without END, END before START, START inside a block, a second
block, both words in one comment) is a one-line :class:`ValidationError` with the line
numbers. This module is the one implementation of these rules: the operators use it, and
``evo.target`` checks a seed with it when a target is loaded.

Example:
    >>> block_span("s = 'EVOLVE-BLOCK-START is a word here'\\nx = 1\\n") is None
    True
    >>> block_span("# EVOLVE-BLOCK-START\\nx = 1\\n# EVOLVE-BLOCK-END\\n")
    (1, 3)
"""

from __future__ import annotations

import io
import tokenize

from operators.errors import ValidationError

BLOCK_START = "EVOLVE-BLOCK-START"
BLOCK_END = "EVOLVE-BLOCK-END"


def find_markers(source: str) -> tuple[tuple[int, str], ...]:
    """``(line, BLOCK_START | BLOCK_END)`` for every comment holding a marker, in order.

    Raises:
        ValidationError: ``kind="markers"``: one comment holds both words; ``kind="syntax"``:
            the source does not tokenize (an unterminated string or bracket).
    """
    if BLOCK_START not in source and BLOCK_END not in source:
        return ()  # the common case costs one substring search, not a tokenize pass
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source, newline=None).readline):
            if tok.type != tokenize.COMMENT:
                continue
            line = tok.start[0]
            start, end = BLOCK_START in tok.string, BLOCK_END in tok.string
            if start and end:
                raise ValidationError(
                    f"line {line} holds both {BLOCK_START} and {BLOCK_END}; put each marker "
                    "in a comment line of its own",
                    kind="markers",
                )
            if start or end:
                out.append((line, BLOCK_START if start else BLOCK_END))
    except (tokenize.TokenError, SyntaxError) as e:  # IndentationError is a SyntaxError
        where = e.args[1][0] if isinstance(e, tokenize.TokenError) else e.lineno
        msg = e.args[0] if isinstance(e, tokenize.TokenError) else e.msg
        raise ValidationError(f"syntax error at line {where}: {msg}", kind="syntax") from None
    return tuple(out)


def check_markers(markers: tuple[tuple[int, str], ...]) -> tuple[int, int] | None:
    """The block ``(start_line, end_line)`` that ``markers`` delimit, or None without markers.

    Raises:
        ValidationError: ``kind="markers"``, one line naming the marker lines at fault.
    """
    span: tuple[int, int] | None = None
    start: int | None = None
    for line, kind in markers:
        if kind == BLOCK_START:
            if start is not None:
                raise ValidationError(
                    f"{BLOCK_START} at line {line} is inside the block opened at line {start}; "
                    "blocks do not nest: remove one of the two",
                    kind="markers",
                )
            if span is not None:
                raise ValidationError(
                    f"a second {BLOCK_START} at line {line} (the block at lines {span[0]}-"
                    f"{span[1]} is already closed); evo evolves one block per file: merge "
                    "them into one",
                    kind="markers",
                )
            start = line
        else:
            if start is None and span is not None:
                raise ValidationError(
                    f"a second {BLOCK_END} at line {line} (the block at lines {span[0]}-"
                    f"{span[1]} is already closed); remove it",
                    kind="markers",
                )
            if start is None:
                later = next((n for n, k in markers if k == BLOCK_START and n > line), None)
                raise ValidationError(
                    f"{BLOCK_END} at line {line} comes before "
                    + (f"{BLOCK_START} (line {later})" if later else f"any {BLOCK_START}")
                    + "; a block is a START comment line, then an END one",
                    kind="markers",
                )
            span, start = (start, line), None
    if start is not None:
        raise ValidationError(
            f"{BLOCK_START} at line {start} has no {BLOCK_END} after it; add the END "
            "comment line or remove the START one",
            kind="markers",
        )
    return span


def block_span(source: str) -> tuple[int, int] | None:
    """The marker lines ``(start, end)`` of ``source``'s evolve block, or None without one.

    Raises:
        ValidationError: the markers break the rules (see the module docstring).
    """
    return check_markers(find_markers(source))
