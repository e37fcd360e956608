"""Apply an LLM reply to the parent program, in one of three formats.

**definitions** (the default). The reply holds fenced python code blocks whose top-level
statements are whole definitions; each is swapped in with libcst at the parent's node of the
same name, so whitespace drift in the reply and unrelated code in the parent cannot break
the edit. Every byte of the parent outside the swapped nodes is kept, and so are the comment
lines above a swapped node (``# evo: region=...`` labels survive). The rules:

- ``def f`` / ``class C``: replaces the top-level definition named ``f`` / ``C`` (the whole
  class: give every method); a new name is added after the parent's last top-level
  definition.
- A method alone: a ``def`` preceded by the comment line ``# replaces: C.method`` replaces (or
  adds) that method of top-level class ``C``. Without the comment, a ``def`` whose first
  parameter is ``self`` or ``cls`` and whose name is no top-level name replaces the method of
  that name when exactly one class has it (an error when several have it).
- ``NAME = value`` (one plain name, annotated or not): replaces the top-level assignment to
  ``NAME``; a new name is added after the parent's last UPPER_CASE constant (else after the
  last definition).
- ``import``/``from ... import``: added after the parent's last import unless already there.
- ``if``/``for``/``while``/``with`` at top level: replaces the parent statement with the same
  header (``if __name__ == "__main__":``), when exactly one has it.
- Docstrings are ignored; anything else is an :class:`EditError`.

In a block target (EVOLVE-BLOCK markers) only definitions inside the block may be replaced,
and new ones go after the block's last statement.

**search_replace**: OpenEvolve's ``<<<<<<< SEARCH`` / ``=======`` / ``>>>>>>> REPLACE``
blocks, applied in order, each to the program as the earlier blocks left it, all or none
(never a partial edit). A SEARCH text matches *whole lines*: equal up to trailing whitespace or
a trailing ``# comment`` it left out (the comment is kept on the replacement line); failing
that, the whole text may match after one uniform indentation shift, and the REPLACE text is
re-indented by the same shift. A text that matches nowhere, in several places, or only inside
a line (``LEN = 2`` against ``LEN = 25``) fails with a reason the next prompt shows the model.

**whole_file**: the whole new program in one fenced python block (the longest one, if the
reply holds several), or the whole reply when it has no fence and is nothing but Python.

In every format a fence opened and never closed means the reply was cut off: it fails as
``truncated`` rather than applying the blocks before it. Every :class:`EditError` has a
``kind`` (:data:`EDIT_KINDS`).

The result is not validated here; :func:`operators.validate.validate_child` does that.
"""

from __future__ import annotations

import ast
import re
import textwrap

import libcst as cst

from operators.base import render_body
from operators.errors import ValidationError
from operators.parsed import parsed
from operators.sites import canonical_expr, node_code
from operators.statements import CONSTANT_NAME, Unit, units

FENCE = re.compile(
    r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL
)
TURN_MARKER = re.compile(
    r"<\|im_(?:start|end)\|>|<(?:start|end)_of_turn>|<\|eot_id\|>|<\|endoftext\|>"
    r"|<\|start_header_id\|>|<\|end\|>|</s>"
)
"""Chat-template markers of common model families (ChatML, Gemma, Llama 3, GPT-2, Phi)."""
FENCE_LINE = re.compile(r"^[ \t]*```", re.MULTILINE)
PYTHON_TAGS = ("", "python", "py", "python3")
IDEA_LINE = re.compile(
    r"^[ \t>*_#-]*IDEA[ \t*_]*:[ \t*_]*(.+?)[ \t*_]*$", re.MULTILINE | re.IGNORECASE
)
REPLACES = re.compile(r"#\s*replaces\s*:\s*([A-Za-z_]\w*)\.([A-Za-z_]\w*)")
TRAILING_COMMENT = re.compile(r"^(.*\S)(\s+#[^'\"]*?)\s*$")
"""A line's code and its trailing comment (a ``#`` with no quote after it, so not in a
string)."""
SEARCH_MARK = re.compile(r"^<<<<<<< SEARCH[ \t]*$", re.MULTILINE)
SEARCH_BLOCK = re.compile(
    r"^<<<<<<< SEARCH[ \t]*\n(.*?)\n?^=======[ \t]*\n(.*?)\n?"
    r"^>>>>>>> REPLACE[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


EDIT_KINDS = (
    "no_code",
    "syntax",
    "truncated",
    "no_match",
    "partial",
    "ambiguous",
    "outside_block",
    "not_definition",
)
"""Why a reply did not apply: no code or edit blocks in it; code that is not Python; a reply
cut off inside a block; an edit whose target is not in the program; a SEARCH text that matches
only part of a line; a target that matches several places (or is defined twice); a change
outside the EVOLVE-BLOCK; a top-level statement that is not a whole definition."""


class EditError(ValueError):
    """The reply cannot be applied to the parent; ``reason`` says why in one line, ``kind``
    is one of :data:`EDIT_KINDS`."""

    def __init__(self, reason: str, kind: str = "no_match"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def code_blocks(reply: str) -> list[tuple[str, str]]:
    """``(language tag, code)`` of every fenced block in ``reply``, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(reply)]


def python_blocks(reply: str) -> list[str]:
    """The fenced python blocks (untagged included), without trailing spaces, dedented; a
    reply with no fence at all that is nothing but Python is one block.

    Raises:
        EditError: kind ``truncated`` when a fence is opened and never closed (the reply was
            cut off inside its code: applying the blocks before it would be half an edit).
    """
    reply = _lf(reply)
    if len(FENCE_LINE.findall(reply)) % 2:
        raise EditError(
            "the reply ends inside a ``` code block (cut off? raise llm.max_tokens)", "truncated"
        )
    blocks = [
        textwrap.dedent("\n".join(ln.rstrip() for ln in code.split("\n")))
        for tag, code in code_blocks(reply)
        if tag in PYTHON_TAGS
    ]
    if not blocks and not FENCE_LINE.search(reply) and _only_code(reply):
        blocks = [textwrap.dedent(reply).strip("\n") + "\n"]
    return blocks


def _only_code(text: str) -> bool:
    """True when ``text`` parses as Python and every top-level statement is code, not a bare
    expression (``Sure`` parses as a name; prose does not survive this)."""
    try:
        tree = ast.parse(textwrap.dedent(text))
    except (SyntaxError, ValueError):
        return False
    return (
        bool(tree.body)
        and all(
            not isinstance(node, ast.Expr)
            or (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str))
            for node in tree.body
        )
        and not all(isinstance(node, ast.Expr) for node in tree.body)
    )


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def end_of_turn(reply: str) -> str:
    """``reply`` up to the first chat-template marker (``<|im_end|>``, ``<end_of_turn>``...): a
    model whose server lacks its template runs on into turns it makes up, and whatever follows
    such a marker is not part of its answer (seen with Gemma 3 270M under llama.cpp)."""
    m = TURN_MARKER.search(reply)
    return reply[: m.start()] if m else reply


def parse_idea(reply: str) -> str:
    """The idea stated before the code: an ```` ```idea ```` block or an ``IDEA:`` line ("" if
    none)."""
    for tag, code in code_blocks(reply):
        if tag == "idea" and code.strip():
            return " ".join(code.split())
    outside = FENCE.sub("", reply)
    m = IDEA_LINE.search(outside)
    return m.group(1).strip() if m else ""


def apply_reply(reply: str, parent_source: str, fmt: str, *, block: bool = False) -> str:
    """The child's source: ``reply`` applied to ``parent_source`` in format ``fmt``.

    Raises:
        EditError: the reply holds no usable edit, or an edit does not apply.
    """
    reply = end_of_turn(_lf(reply))
    if fmt == "definitions":
        return apply_definitions(reply, parent_source, block=block)
    if fmt == "search_replace":
        return apply_search_replace(reply, parent_source)
    if fmt == "whole_file":
        return apply_whole_file(reply)
    raise EditError(f"unknown reply format {fmt!r}", "no_code")


def apply_whole_file(reply: str) -> str:
    """The longest fenced python block of ``reply``, as the whole new program."""
    blocks = python_blocks(reply)
    if not blocks:
        raise EditError("the reply has no ```python code block with the new program", "no_code")
    code = max(blocks, key=len)
    return code if code.endswith("\n") else code + "\n"


def apply_search_replace(reply: str, parent_source: str) -> str:
    """Apply every SEARCH/REPLACE block in order, or none (see the module docstring)."""
    if len(SEARCH_MARK.findall(reply)) > len(SEARCH_BLOCK.findall(reply)):
        raise EditError(
            "a <<<<<<< SEARCH block is not closed by ======= and >>>>>>> REPLACE "
            "(the reply was cut off, or a marker is misspelt)",
            "truncated",
        )
    blocks = SEARCH_BLOCK.findall(reply)
    if not blocks:
        raise EditError(
            "the reply has no <<<<<<< SEARCH / ======= / >>>>>>> REPLACE block", "no_code"
        )
    lines = parent_source.split("\n")
    for n, (search, replace) in enumerate(blocks, 1):
        if not search.strip():
            raise EditError(f"SEARCH/REPLACE block {n}: the SEARCH text is empty", "no_code")
        lines = _replace_lines(lines, search.split("\n"), replace.split("\n"), n)
    return "\n".join(lines)


def _replace_lines(lines: list[str], search: list[str], replace: list[str], n: int) -> list[str]:
    """``lines`` with the one run of whole lines that matches ``search`` replaced.

    A line matches when it is equal up to trailing whitespace; failing that, the whole run may
    match after a uniform indentation shift, and ``replace`` is then re-indented by the same
    shift. No match, several matches, or a match inside a line only, is an :class:`EditError`.
    """
    while search and not search[-1].strip():  # blank lines around the text do not count
        search = search[:-1]
    while search and not search[0].strip():
        search = search[1:]
    k = len(search)
    first = search[0].strip()[:60]
    want = [s.rstrip() for s in search]
    exact = [i for i in range(len(lines) - k + 1) if _same(lines[i : i + k], want)]
    if len(exact) > 1:
        raise EditError(
            f"SEARCH/REPLACE block {n} (starting {first!r}) matches {len(exact)} places in "
            "the program; add lines around it so that it matches exactly once",
            "ambiguous",
        )
    if exact:
        i = exact[0]
        return lines[:i] + _keep_comments(lines[i : i + k], want, replace) + lines[i + k :]
    s_indent = _common_indent(want)
    body = [s[len(s_indent) :] if s.strip() else "" for s in want]
    shifted = []
    for i in range(len(lines) - k + 1):
        window = [ln.rstrip() for ln in lines[i : i + k]]
        indent = _common_indent(window)
        if [w[len(indent) :] if w.strip() else "" for w in window] == body:
            shifted.append((i, indent))
    if len(shifted) == 1:
        i, indent = shifted[0]
        moved = [
            indent + r[min(len(s_indent), len(r) - len(r.lstrip())) :] if r.strip() else r
            for r in replace
        ]
        return lines[:i] + moved + lines[i + k :]
    if len(shifted) > 1:
        raise EditError(
            f"SEARCH/REPLACE block {n} (starting {first!r}) matches {len(shifted)} places "
            "in the program once re-indented; add lines around it so that it "
            "matches exactly once",
            "ambiguous",
        )
    joined, text = "\n".join(lines), "\n".join(want).strip()
    at = joined.find(text)
    if at >= 0:
        line = joined.count("\n", 0, at) + 1
        raise EditError(
            f"SEARCH/REPLACE block {n} (starting {first!r}) matches only part of line {line} "
            f"({lines[line - 1].strip()[:60]!r}); a SEARCH text must hold whole lines",
            "partial",
        )
    raise EditError(
        f"SEARCH/REPLACE block {n} (starting {first!r}) matches nothing in the program; "
        "copy the lines exactly as they are, whole lines only",
        "no_match",
    )


def _same(window: list[str], want: list[str]) -> bool:
    """Each line equal up to trailing whitespace, or up to a trailing comment the SEARCH text
    left out (models often drop ``# ...`` from the lines they quote)."""
    return all(a.rstrip() == b or _code_part(a) == b for a, b in zip(window, want, strict=True))


def _code_part(line: str) -> str:
    m = TRAILING_COMMENT.match(line)
    return m.group(1) if m else line.rstrip()


def _keep_comments(window: list[str], want: list[str], replace: list[str]) -> list[str]:
    """``replace`` with the trailing comments the SEARCH text left out put back on the
    replacement lines at the same positions (when those have no comment of their own)."""
    out = list(replace)
    for j, (line, w) in enumerate(zip(window, want, strict=True)):
        m = TRAILING_COMMENT.match(line)
        if m and line.rstrip() != w and j < len(out) and out[j].strip() and "#" not in out[j]:
            out[j] = out[j].rstrip() + m.group(2)
    return out


def _common_indent(lines: list[str]) -> str:
    """The leading whitespace every non-blank line shares (``""`` if they share none)."""
    indents = [ln[: len(ln) - len(ln.lstrip())] for ln in lines if ln.strip()]
    if not indents:
        return ""
    common = indents[0]
    for ind in indents[1:]:
        while not ind.startswith(common):
            common = common[:-1]
    return common


def apply_definitions(reply: str, parent_source: str, *, block: bool = False) -> str:
    """Swap the reply's definitions into the parent (see the module docstring)."""
    blocks = python_blocks(reply)
    if not blocks:
        raise EditError("the reply has no ```python code block with definitions", "no_code")
    p = parsed(parent_source)
    try:
        module = p.module
        parent_units = units(p)
    except ValidationError as e:
        raise EditError(f"the parent cannot be parsed: {e}", "syntax") from None
    new_stmts: list[tuple[int, cst.BaseStatement]] = []
    for n, code in enumerate(blocks, 1):
        try:
            reply_module = cst.parse_module(code)
        except cst.ParserSyntaxError as e:
            msg = " ".join(e.message.split())
            raise EditError(
                f"code block {n} is not valid Python (line {e.raw_line}: {msg})", "syntax"
            ) from None
        body = list(reply_module.body)
        if body and any(line.comment is not None for line in reply_module.header):
            # Comments at the top of a block (``# replaces: C.m``) belong to its first statement.
            body[0] = body[0].with_changes(
                leading_lines=[*reply_module.header, *body[0].leading_lines]
            )
        new_stmts.extend((n, s) for s in body)
    return _Splicer(module, parent_units, block).apply(new_stmts, p)


class _Splicer:
    """Collects replacements and insertions for one parent module, then renders the child."""

    def __init__(self, module: cst.Module, parent_units: tuple[Unit, ...], block: bool):
        self.units = parent_units
        self.block = block
        self.body = list(module.body)
        self.replaced: dict[int, cst.BaseStatement] = {}
        self.methods: dict[int, dict[str, cst.FunctionDef]] = {}
        self.inserted: dict[str, list[cst.BaseStatement]] = {
            "def": [],
            "constant": [],
            "import": [],
        }
        self.by_name: dict[str, list[int]] = {}
        self.headers: dict[str, list[int]] = {}
        for i, stmt in enumerate(self.body):
            name = _stmt_name(stmt)
            if name:
                self.by_name.setdefault(name, []).append(i)
            header = _header(stmt)
            if header:
                self.headers.setdefault(header, []).append(i)
        self.imports = {node_code(s).strip() for s in self.body if _is_import(s)}
        self.given: set[str] = set()

    def apply(self, stmts: list[tuple[int, cst.BaseStatement]], p: object) -> str:
        for n, stmt in stmts:
            self._one(n, stmt)
        body: list[cst.BaseStatement] = []
        spots = {kind: self._insertion_point(kind) for kind, new in self.inserted.items() if new}
        if -1 in spots.values():
            body.extend(s for kind, at in spots.items() if at == -1 for s in self.inserted[kind])
        for i, stmt in enumerate(self.body):
            stmt = self.replaced.get(i, stmt)
            if i in self.methods:
                stmt = _with_methods(stmt, self.methods[i])  # type: ignore[arg-type]
            body.append(stmt)
            for kind in ("import", "def", "constant"):
                if spots.get(kind) == i:
                    body.extend(self.inserted[kind])
        return render_body(p, body)  # type: ignore[arg-type]

    def _given(self, n: int, key: str) -> None:
        """Refuse a reply that gives the same definition twice: which one to keep is a guess."""
        if key in self.given:
            raise EditError(
                f"code block {n}: {key!r} is given twice in the reply; give each definition once",
                "ambiguous",
            )
        self.given.add(key)

    def _one(self, n: int, stmt: cst.BaseStatement) -> None:
        if isinstance(stmt, cst.FunctionDef):
            target = _replaces_header(stmt)
            if target is not None:
                self._given(n, ".".join(target))
                self._method(n, target[0], target[1], stmt)
            elif stmt.name.value in self.by_name:
                self._given(n, stmt.name.value)
                self._replace(n, stmt.name.value, stmt)
            elif (owner := self._sole_owner(stmt)) is not None:
                self._given(n, f"{owner}.{stmt.name.value}")
                self._method(n, owner, stmt.name.value, stmt)
            elif _is_method(stmt):
                raise EditError(
                    f"code block {n}: method {stmt.name.value!r} (first parameter "
                    f"{stmt.params.params[0].name.value!r}) belongs to no class of the "
                    "program; give the whole class, or put `# replaces: ClassName."
                    f"{stmt.name.value}` above the def",
                    "no_match",
                )
            else:
                self._given(n, stmt.name.value)
                self.inserted["def"].append(_fresh(stmt, blank=2))
            return
        if isinstance(stmt, cst.ClassDef):
            self._given(n, stmt.name.value)
            if stmt.name.value in self.by_name:
                self._replace(n, stmt.name.value, stmt)
            else:
                self.inserted["def"].append(_fresh(stmt, blank=2))
            return
        if _is_docstring(stmt):
            return
        if _is_import(stmt):
            if node_code(stmt).strip() not in self.imports:
                self.inserted["import"].append(_fresh(stmt, blank=0))
            return
        name = _stmt_name(stmt)
        if name is not None:
            self._given(n, name)
            if name in self.by_name:
                self._replace(n, name, stmt)
            else:
                self.inserted["constant"].append(_fresh(stmt, blank=0))
            return
        header = _header(stmt)
        if header is not None and len(self.headers.get(header, [])) == 1:
            self._put(n, self.headers[header][0], stmt, header.split(":", 1)[1])
            return
        first = node_code(stmt).strip().splitlines()[0][:60] if node_code(stmt).strip() else "?"
        raise EditError(
            f"code block {n}: the top-level statement {first!r} is not a whole "
            "definition, constant assignment or import of the program; give "
            "whole functions, classes or constants",
            "not_definition",
        )

    def _replace(self, n: int, name: str, stmt: cst.BaseStatement) -> None:
        at = self.by_name[name]
        if len(at) > 1:
            raise EditError(
                f"code block {n}: {name!r} is defined {len(at)} times at the top "
                "level of the program, so the one to replace is ambiguous",
                "ambiguous",
            )
        self._put(n, at[0], stmt, name)

    def _put(self, n: int, i: int, stmt: cst.BaseStatement, label: str) -> None:
        if self.block and not self.units[i].in_block:
            raise EditError(
                f"code block {n}: {label!r} is outside the EVOLVE-BLOCK; only "
                "code inside the block may change",
                "outside_block",
            )
        old = self.body[i]
        new = stmt.with_changes(leading_lines=old.leading_lines)  # type: ignore[attr-defined]
        if (
            isinstance(new, cst.SimpleStatementLine)
            and isinstance(old, cst.SimpleStatementLine)
            and new.trailing_whitespace.comment is None
        ):
            # ``LR = 2e-3`` keeps the parent's ``# peak learning rate`` comment.
            new = new.with_changes(trailing_whitespace=old.trailing_whitespace)
        self.replaced[i] = new
        self.methods.pop(i, None)

    def _sole_owner(self, fn: cst.FunctionDef) -> str | None:
        params = fn.params.params
        if not params or params[0].name.value not in ("self", "cls"):
            return None
        owners = [
            s.name.value
            for s in self.body
            if isinstance(s, cst.ClassDef)
            and any(
                isinstance(m, cst.FunctionDef) and m.name.value == fn.name.value
                for m in _class_body(s)
            )
        ]
        if len(owners) > 1:
            raise EditError(
                f"method {fn.name.value!r} is defined in classes "
                f"{', '.join(owners)}; put `# replaces: ClassName."
                f"{fn.name.value}` above the def to say which",
                "ambiguous",
            )
        return owners[0] if owners else None

    def _method(self, n: int, cls: str, method: str, fn: cst.FunctionDef) -> None:
        at = [i for i in self.by_name.get(cls, []) if isinstance(self.body[i], cst.ClassDef)]
        if len(at) != 1:
            raise EditError(
                f"code block {n}: method {cls}.{method}: the program has "
                f"{'no' if not at else len(at)} top-level class {cls!r}",
                "no_match" if not at else "ambiguous",
            )
        i = at[0]
        if self.block and not self.units[i].in_block:
            raise EditError(
                f"code block {n}: class {cls!r} is outside the EVOLVE-BLOCK; only "
                "code inside the block may change",
                "outside_block",
            )
        if fn.name.value != method:
            fn = fn.with_changes(name=cst.Name(method))
        cls_node = self.replaced.get(i, self.body[i])
        same = [
            m
            for m in _class_body(cls_node)  # type: ignore[arg-type]
            if isinstance(m, cst.FunctionDef) and m.name.value == method
        ]
        if len(same) > 1:
            raise EditError(
                f"code block {n}: class {cls!r} defines {method!r} {len(same)} "
                "times (a property?); give the whole class instead",
                "ambiguous",
            )
        self.methods.setdefault(i, {})[method] = fn

    def _insertion_point(self, kind: str) -> int:
        """Index of the parent statement after which new statements of ``kind`` go."""
        ok = [u.index for u in self.units if u.in_block or not self.block]
        if not ok:
            raise EditError(
                "the program's EVOLVE-BLOCK has no statement to add code after", "outside_block"
            )
        defs = [i for i in ok if isinstance(self.body[i], (cst.FunctionDef, cst.ClassDef))]
        if kind == "import":
            imports = [i for i in ok if _is_import(self.body[i])]
            if imports:
                return imports[-1]
            if self.block:  # after the block's first statement: the START marker stays above
                return ok[0]
            docs = [i for i in ok[:1] if _is_docstring(self.body[i])]
            return docs[0] if docs else -1
        if kind == "constant":
            consts = [
                i
                for i in ok
                if (name := _stmt_name(self.body[i]))
                and CONSTANT_NAME.match(name)
                and not _is_def(self.body[i])
            ]
            if consts:
                return consts[-1]
        if defs:
            return defs[-1]
        if self.block:
            return ok[-1]
        # No definitions at all: before the script's code, after its imports and constants.
        head = [
            i
            for i in ok
            if _is_import(self.body[i])
            or _is_docstring(self.body[i])
            or ((name := _stmt_name(self.body[i])) and CONSTANT_NAME.match(name))
        ]
        return head[-1] if head else -1


def _is_method(fn: cst.FunctionDef) -> bool:
    params = fn.params.params
    return bool(params) and params[0].name.value in ("self", "cls")


def _is_def(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, (cst.FunctionDef, cst.ClassDef))


def _class_body(cls: cst.ClassDef) -> list[cst.BaseStatement]:
    body = cls.body
    return list(body.body) if isinstance(body, cst.IndentedBlock) else []


def _with_methods(cls: cst.ClassDef, methods: dict[str, cst.FunctionDef]) -> cst.ClassDef:
    if not isinstance(cls.body, cst.IndentedBlock):
        raise EditError(
            f"class {cls.name.value!r} has a one-line body; give the whole class",
            "not_definition",
        )
    body = list(cls.body.body)
    todo = dict(methods)
    for k, m in enumerate(body):
        if isinstance(m, cst.FunctionDef) and m.name.value in todo:
            body[k] = todo.pop(m.name.value).with_changes(leading_lines=m.leading_lines)
    body.extend(_fresh(fn, blank=1) for fn in todo.values())
    return cls.with_changes(body=cls.body.with_changes(body=body))


def _replaces_header(fn: cst.FunctionDef) -> tuple[str, str] | None:
    for line in fn.leading_lines:
        if line.comment is not None:
            m = REPLACES.search(line.comment.value)
            if m:
                return m.group(1), m.group(2)
    return None


def _fresh(stmt: cst.BaseStatement, blank: int) -> cst.BaseStatement:
    """A new statement with ``blank`` empty lines above it and the reply's own comments, minus
    ``# replaces:`` headers."""
    comments = [
        ln
        for ln in getattr(stmt, "leading_lines", ())
        if ln.comment is not None and not REPLACES.search(ln.comment.value)
    ]
    lines = [cst.EmptyLine()] * blank + comments
    return stmt.with_changes(leading_lines=lines)  # type: ignore[attr-defined]


def _stmt_name(stmt: cst.CSTNode) -> str | None:
    """The name a top-level statement defines: a def, a class, or one assignment to a name."""
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        return stmt.name.value
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        small = stmt.body[0]
        if isinstance(small, cst.Assign) and len(small.targets) == 1:
            target = small.targets[0].target
            return target.value if isinstance(target, cst.Name) else None
        if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
            return small.target.value
    return None


def _is_import(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) > 0
        and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)
    )


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _header(stmt: cst.CSTNode) -> str | None:
    """``kind:header code`` of a top-level compound statement that is not a definition."""
    if isinstance(stmt, cst.If):
        return "if:" + _expr(stmt.test)
    if isinstance(stmt, cst.While):
        return "while:" + _expr(stmt.test)
    if isinstance(stmt, cst.For):
        return f"for:{_expr(stmt.target)} in {_expr(stmt.iter)}"
    if isinstance(stmt, cst.With):
        return "with:" + ", ".join(_expr(item.item) for item in stmt.items)
    return None


def _expr(node: cst.CSTNode) -> str:
    """An expression's code with spacing and quotes normalised (``ast.unparse``)."""
    code = node_code(node)
    canon = canonical_expr(code)
    return code if canon is None else canon
