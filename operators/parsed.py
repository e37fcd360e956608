"""One source text, parsed once: its libcst module, its stdlib ast, its canonical hash.

Parsing a 600-line script with libcst costs ~45 ms and generating its code ~15 ms, so every
analysis of a source is computed lazily on a :class:`Parsed` kept in a small LRU cache keyed
by the sha256 of the exact text. Parents are picked from the archive again and again; with
the cache, the second child of a parent pays nothing for parsing it. Operators that build a
child from a parent's CST seed the cache with the child's module and statement chunks
(:func:`remember`), so validating the child does not parse it again.
"""

from __future__ import annotations

import ast
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import libcst as cst

from operators.errors import ValidationError

CACHE_SIZE = 128
"""Sources kept parsed. A 600-line module with all its analyses takes about 2.5 MB, so the
cache stays under ~320 MB; the loop's parents (elites picked again and again) stay hot."""

_LINE_BREAK = re.compile(r"\r\n?|\n")


@dataclass(frozen=True)
class Layout:
    """A module's text as ``header + "".join(chunks) + footer``, one chunk per top-level statement.

    A chunk holds the statement with its leading blank and comment lines, exactly as written.
    ``starts[i]`` is the 1-based line where chunk ``i`` begins. ``spliceable`` is False for the
    rare module whose text is not that concatenation (e.g. no trailing newline); children of
    such a parent are rendered with ``module.code`` instead of by splicing chunks.
    """

    header: str
    chunks: tuple[str, ...]
    footer: str
    spliceable: bool

    @cached_property
    def starts(self) -> tuple[int, ...]:
        line = 1 + self.header.count("\n")
        out = []
        for chunk in self.chunks:
            out.append(line)
            line += chunk.count("\n")
        return tuple(out)

    def render(self, replaced: dict[int, str]) -> str:
        """The text with chunk ``i`` replaced by ``replaced[i]``."""
        return (
            self.header
            + "".join(replaced.get(i, c) for i, c in enumerate(self.chunks))
            + self.footer
        )


def strip_docstrings(tree: ast.Module) -> ast.Module:
    """Remove module, class and function docstrings in place (an emptied body gets ``pass``).

    Only statement lists are visited (docstrings cannot hide in expressions), which is about
    four times faster than ``ast.walk`` over every node.
    """
    _strip(tree.body, docstring_allowed=True, is_module=True)
    return tree


_BODIES = ("body", "orelse", "finalbody")


def _strip(body: list[ast.stmt], docstring_allowed: bool, is_module: bool = False) -> None:
    if (
        docstring_allowed
        and body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        del body[0]
        if not body and not is_module:
            body.append(ast.Pass())
    for stmt in body:
        owner = isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        for name in _BODIES:
            inner = getattr(stmt, name, None)
            if inner:
                _strip(inner, docstring_allowed=owner and name == "body")
        for handler in getattr(stmt, "handlers", ()):
            _strip(handler.body, docstring_allowed=False)
        for case in getattr(stmt, "cases", ()):
            _strip(case.body, docstring_allowed=False)


def syntax_error(e: SyntaxError | ValueError | cst.ParserSyntaxError) -> ValidationError:
    """A one-line :class:`ValidationError` for a parser's exception."""
    if isinstance(e, SyntaxError):
        msg = f"syntax error at line {e.lineno}: {e.msg}"
    elif isinstance(e, cst.ParserSyntaxError):
        msg = f"syntax error at line {e.raw_line}: {e.message}"
    else:
        msg = f"syntax error: {e}"
    return ValidationError(" ".join(msg.split()), kind="syntax")


class Parsed:
    """Lazily computed views of one source text; see the module docstring.

    Every property that parses raises :class:`ValidationError` on code the parser rejects.
    """

    def __init__(self, source: str):
        self.source = source
        self.key = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()

    @cached_property
    def tree(self) -> ast.Module:
        """The stdlib ast with docstrings removed (positions of other nodes are kept)."""
        try:
            return strip_docstrings(ast.parse(self.source))
        except (SyntaxError, ValueError) as e:  # ValueError: null bytes in the source
            raise syntax_error(e) from None

    @cached_property
    def canonical(self) -> str:
        """Source with comments, docstrings and formatting normalised away."""
        return ast.unparse(self.tree)

    @cached_property
    def hash(self) -> str:
        """sha256 hex of :attr:`canonical`: the Program id."""
        return hashlib.sha256(self.canonical.encode("utf-8", "surrogatepass")).hexdigest()

    @cached_property
    def module(self) -> cst.Module:
        """The libcst module (concrete syntax: comments and formatting kept)."""
        self.tree  # noqa: B018 - the stdlib parser gives the clearer message for bad syntax
        try:
            return cst.parse_module(self.source)
        except cst.ParserSyntaxError as e:
            raise syntax_error(e) from None

    @cached_property
    def layout(self) -> Layout:
        module = self.module
        chunks = tuple(module.code_for_node(s) for s in module.body)
        if not chunks:
            return Layout(self.source, chunks, "", spliceable=True)
        # the header's text is generated, not searched for: a header comment may quote the body
        header = "".join(module.code_for_node(line) for line in module.header)
        joined = "".join(chunks)
        source = self.source
        if not (source.startswith(header) and source.startswith(joined, len(header))):
            return Layout("", chunks, "", spliceable=False)
        return Layout(header, chunks, source[len(header) + len(joined) :], spliceable=True)

    @cached_property
    def lines(self) -> list[str]:
        """The source's lines as the parsers number them: split at ``\\r\\n``, ``\\r`` and
        ``\\n`` only (``str.splitlines`` also splits at a form feed, shifting line numbers)."""
        lines = _LINE_BREAK.split(self.source)
        if lines and not lines[-1]:
            lines.pop()
        return lines


_CACHE: OrderedDict[str, Parsed] = OrderedDict()
_CACHE_LOCK = threading.Lock()  # LLM operators propose from worker threads


def parsed(source: str) -> Parsed:
    """The cached :class:`Parsed` for ``source`` (created, unparsed, on a miss)."""
    p = Parsed(source)
    with _CACHE_LOCK:
        hit = _CACHE.get(p.key)
        if hit is not None:
            _CACHE.move_to_end(p.key)
            return hit
        _CACHE[p.key] = p
        if len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return p


def remember(
    source: str, module: cst.Module, chunks: Sequence[str] | None = None, like: Layout | None = None
) -> Parsed:
    """Seed the cache with a child's module (and chunks, when built by splicing ``like``)."""
    p = parsed(source)
    p.__dict__.setdefault("module", module)
    if chunks is not None and like is not None and like.spliceable:
        p.__dict__.setdefault("layout", Layout(like.header, tuple(chunks), like.footer, True))
    return p


def clear_cache() -> None:
    """Forget every parsed source (benchmarks use it to time a cold cache)."""
    with _CACHE_LOCK:
        _CACHE.clear()
