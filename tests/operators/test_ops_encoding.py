"""The evolving file's form: a byte-order mark, PEP 263 encodings and line endings survive a
round trip byte for byte; a child its encoding cannot hold is invalid, not a crash."""

from __future__ import annotations

import pytest

from operators import ValidationError, validate_child

LATIN1 = '# -*- coding: latin-1 -*-\nNAME = "café"\nRATE = 0.5\n'

FILES = {
    "utf-8 with a byte-order mark, CRLF": b'\xef\xbb\xbfNAME = "caf\xc3\xa9"\r\nRATE = 0.5\r\n',
    "latin-1 declared": LATIN1.encode("latin-1"),
    "cp1252 declared on line 2, CRLF": (
        b'#!/usr/bin/env python\r\n# coding: cp1252\r\nEURO = "\x80"\r\nRATE = 0.5\r\n'
    ),
    "utf-8, LF": b'NAME = "caf\xc3\xa9"\nRATE = 0.5\n',
    "old Mac CR": b"RATE = 0.5\rSTEPS = 3\r",
    "no final newline": b"RATE = 0.5",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_seed_comes_back_byte_for_byte_and_a_child_in_the_same_form(name):
    from operators import decode_source, encode_source

    data = FILES[name]
    text, form = decode_source(data)
    assert "\r" not in text and not text.startswith("\ufeff")
    compile(text, name, "exec")  # the text is what Python reads from the file
    assert encode_source(text, form) == data
    child = text.replace("RATE = 0.5", "RATE = 0.25")
    written = encode_source(child, form)
    assert written.startswith(b"\xef\xbb\xbf") == data.startswith(b"\xef\xbb\xbf")
    assert (b"\r\n" in written) == (b"\r\n" in data)
    assert decode_source(written) == (child, form)


UNDECODABLE = {
    "latin-1 byte, no declaration": (
        b'X = 1\nNAME = "caf\xe9"\n',
        r"byte 0xe9 at offset 17 \(line 2\) is not valid utf-8; .*declare its encoding",
    ),
    "latin-1 byte on line 1": (b"# caf\xe9\nX = 1\n", r"byte 0xe9 at offset 5 \(line 1\)"),
    "unknown encoding": (b"# coding: klingon\nX = 1\n", "unknown encoding: klingon"),
    "mark and another encoding": (
        b"\xef\xbb\xbf# coding: latin-1\nX = 1\n",
        "byte-order mark but declares another encoding",
    ),
    "bad byte after a BOM": (b'\xef\xbb\xbfX = "\xff"\n', r"byte 0xff at offset 8 \(line 1\)"),
}


@pytest.mark.parametrize("name", sorted(UNDECODABLE))
def test_undecodable_bytes_are_one_line_naming_the_offset(name):
    from operators import SourceDecodeError, decode_source

    data, message = UNDECODABLE[name]
    with pytest.raises(SourceDecodeError, match=message) as e:
        decode_source(data)
    assert "\n" not in str(e.value)


def test_a_child_the_encoding_cannot_hold_is_invalid():
    ok = LATIN1.replace("RATE = 0.5", "RATE = 0.25  # déjà vu")
    assert validate_child(ok, LATIN1, block=False)
    euro = LATIN1.replace("RATE = 0.5", 'RATE = 0.5\nSIGN = "€"')
    with pytest.raises(ValidationError) as e:
        validate_child(euro, LATIN1, block=False)
    assert e.value.kind == "encoding"
    assert str(e.value) == (
        "character '€' (U+20AC) at line 4, column 9 cannot be written in the file's "
        "encoding iso8859-1; write it as '\\u20ac' in a string, or change the coding "
        "declaration"
    )
    with pytest.raises(ValidationError, match="unknown encoding: klingon") as e:
        validate_child("# coding: klingon\nX = 2\n", "X = 1\n", block=False)
    assert e.value.kind == "encoding"
