"""A program's text and its file's bytes: the encoding, a UTF-8 byte-order mark, line endings.

Operators work on text with ``\\n`` line endings (a program's id hashes that text). The file
the user wrote may be UTF-8 with a byte-order mark, may declare another encoding on its first
or second line (PEP 263: ``# -*- coding: latin-1 -*-``), and may end its lines with ``\\r\\n``.
:func:`decode_source` reads the seed's bytes as Python would and notes that
:class:`FileForm`; :func:`encode_source` turns any program's text back into bytes of the same
form, so the child file on disk is what the user's evaluator would see: the seed comes back
byte for byte (a file mixing line endings gets its first one throughout).

A child is written in the encoding its own text declares, the seed's as long as the coding
line is kept. :func:`check_encodable` is part of every child's validation: a character that
encoding cannot hold (an operator or a model put it there) makes the child invalid
(``kind="encoding"``), never a crash at write time.

Example:
    >>> text, form = decode_source(b"\\xef\\xbb\\xbfx = 1\\r\\n")
    >>> text, form.bom, form.newline
    ('x = 1\\n', True, '\\r\\n')
    >>> encode_source("x = 2\\n", form)
    b'\\xef\\xbb\\xbfx = 2\\r\\n'
"""

from __future__ import annotations

import codecs
import io
import re
import tokenize
from dataclasses import dataclass

from operators.errors import ValidationError

_LINE_END = re.compile(r"\r\n?|\n")
_LINE_END_BYTES = re.compile(rb"\r\n?|\n")


@dataclass(frozen=True)
class FileForm:
    """How a program's text is stored on disk (plain data: it travels with the target).

    Attributes:
        encoding: the codec the seed was decoded with (its PEP 263 declaration, else UTF-8).
        bom: True when the file starts with a UTF-8 byte-order mark.
        newline: the line ending written: ``"\\n"``, ``"\\r\\n"`` or ``"\\r"``.
    """

    encoding: str = "utf-8"
    bom: bool = False
    newline: str = "\n"


class SourceDecodeError(ValueError):
    """A file's bytes are not Python source text; one line (the caller adds the path)."""


def _codec(name: str) -> str:
    """The codec's canonical name; ``utf-8-sig`` (a BOM) is UTF-8 here."""
    name = codecs.lookup(name).name
    return "utf-8" if name == "utf-8-sig" else name


def decode_source(data: bytes, encoding: str | None = None) -> tuple[str, FileForm]:
    """The text of a Python file's bytes, decoded as Python decodes it, and its form.

    Args:
        data: the file's bytes.
        encoding: decode with this codec instead of the one the file declares (a target
            decodes its seed with the encoding it found when it loaded).

    Returns:
        ``(text, form)``: text without the byte-order mark and with ``\\n`` line endings.

    Raises:
        SourceDecodeError: an unknown or malformed coding declaration, or a byte the
            encoding cannot decode (its offset and line are named).
    """
    bom = data.startswith(codecs.BOM_UTF8)
    if encoding is None:
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError as e:
            if bom and e.msg.startswith("encoding problem"):
                raise SourceDecodeError(
                    "it starts with a UTF-8 byte-order mark but declares another encoding; "
                    "remove the mark or the coding declaration"
                ) from None
            if not e.msg.startswith("invalid or missing encoding declaration"):
                raise SourceDecodeError(
                    f"its coding declaration is unusable ({e.msg}); fix the '# -*- coding: "
                    "NAME -*-' comment on line 1 or 2, or save the file as UTF-8"
                ) from None
            encoding = "utf-8"  # a first line undecodable as UTF-8: the decoder names the byte
    encoding = _codec(encoding)
    body = data[len(codecs.BOM_UTF8) :] if bom and encoding == "utf-8" else data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as e:
        offset = e.start + len(data) - len(body)
        line = len(_LINE_END_BYTES.findall(data, 0, offset)) + 1
        raise SourceDecodeError(
            f"byte 0x{data[offset]:02x} at offset {offset} (line {line}) is not valid "
            f"{encoding}; save the file as UTF-8, or declare its encoding on line 1 or 2 "
            "(PEP 263, e.g. '# -*- coding: latin-1 -*-')"
        ) from None
    m = _LINE_END.search(text)
    newline = m.group() if m else "\n"
    if "\r" in text:
        text = _LINE_END.sub("\n", text)
    return text, FileForm(encoding=encoding, bom=bom and encoding == "utf-8", newline=newline)


def declared_encoding(text: str) -> str:
    """The codec ``text`` declares on its first or second line (PEP 263), else ``utf-8``.

    Raises:
        ValidationError: ``kind="encoding"``, the declaration names no known codec.
    """
    head = [line.encode("utf-8", "backslashreplace") for line in text.split("\n", 2)[:2]]
    lines = iter([line + b"\n" for line in head])
    try:
        encoding, _ = tokenize.detect_encoding(lambda: next(lines, b""))
    except SyntaxError as e:
        raise ValidationError(f"coding declaration: {e.msg}", kind="encoding") from None
    return _codec(encoding)


def check_encodable(text: str) -> str:
    """The encoding ``text`` is written in (:func:`declared_encoding`), once every character
    was found to fit it.

    Raises:
        ValidationError: ``kind="encoding"``, naming the character, its line and column.
    """
    return _encode(text)[0]


def encode_source(text: str, form: FileForm) -> bytes:
    """The bytes of the file holding ``text``: ``form``'s line ending and byte-order mark, in
    the encoding the text declares (the seed's, while its coding line is kept).

    Raises:
        ValidationError: ``kind="encoding"``, see :func:`check_encodable`.
    """
    encoding, data = _encode(text, form.newline)
    return codecs.BOM_UTF8 + data if form.bom and encoding == "utf-8" else data


def _encode(text: str, newline: str = "\n") -> tuple[str, bytes]:
    encoding = declared_encoding(text)
    if newline != "\n" or "\r" in text:
        text = _LINE_END.sub(newline, text)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as e:
        ch = text[e.start]
        line = text.count("\n", 0, e.start) + 1
        col = e.start - (text.rfind("\n", 0, e.start) + 1) + 1
        code = ord(ch)
        escape = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
        raise ValidationError(
            f"character {ch!r} (U+{code:04X}) at line {line}, column {col} cannot be written "
            f"in the file's encoding {encoding}; write it as '{escape}' in a string, or change "
            "the coding declaration",
            kind="encoding",
        ) from None
    return encoding, data
