"""The operator interface shared by the structural operators and the LLM operators.

An operator is given parents (archive Programs), a :class:`Context` of plain data about the
target, and a numpy Generator; it returns a :class:`Child` or raises :class:`NoChild`. The same
Generator state gives the same child, so a run is reproducible from its seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import libcst as cst
import numpy as np

from archive.program import Program
from operators.errors import NoChild, ValidationError
from operators.parsed import Layout, Parsed, parsed, remember
from operators.validate import validate_child


@dataclass(frozen=True)
class Context:
    """What an operator knows about the target and the search, as plain data.

    Attributes:
        seed_source: the seed program's text (the default common ancestor; the reference of
            the edit descriptors; where ``# evo:`` comments are read).
        ranges: ``NAME -> (low, high)`` bounds for numeric constants (a tuple constant's bound
            applies to each element).
        choices: ``NAME -> alternatives`` for constants holding a string or a name.
        droppable: top-level statement keys that ``toggle`` may drop or duplicate.
        block: True when only the ``EVOLVE-BLOCK-START``/``END`` region may change.
        description: the task in words (for LLM operators).
        archive_sample: a few programs from the archive (for LLM operators).
        feedback: stderr tails and failure reasons of recent children (for LLM operators).
        niche: the niche to aim for, e.g. ``{"region": "optimizer", "edit_size_bin": 2}``;
            structural operators favour edits in the named region.
        ancestor_source: the common ancestor for a 3-way merge (default: the seed).
        history: programs the run has evaluated or is evaluating at the search's fidelity
            (for model-based operators such as ``tpe``); finished ones carry their fitness.
        direction: ``minimize`` or ``maximize``: which way the fitness is better.
        step_scale: multiplier of ``constants``' step size (> 0), adapted by the run.
    """

    seed_source: str
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    droppable: tuple[str, ...] = ()
    block: bool = False
    description: str = ""
    archive_sample: tuple[Program, ...] = ()
    feedback: tuple[str, ...] = ()
    niche: dict[str, Any] | None = None
    ancestor_source: str | None = None
    history: tuple[Program, ...] = ()
    direction: str = "minimize"
    step_scale: float = 1.0


@dataclass(frozen=True)
class Child:
    """A proposed program with its provenance.

    Attributes:
        source: the full text of the evolving file.
        operator: the name of the operator that made it.
        parents: the parents' program ids, the first parent first.
        description: one line saying what changed, e.g. ``LEARNING_RATE: 0.003 -> 0.0047``.
        id: the child's canonical hash (the Program id), computed during validation.
    """

    source: str
    operator: str
    parents: tuple[str, ...]
    description: str
    id: str = ""


class Operator(ABC):
    """Makes one child from ``arity`` parents.

    Subclasses set ``name`` (the key used in operator weights) and ``arity`` (1: mutation,
    2: crossover) and implement :meth:`propose`.
    """

    name: ClassVar[str]
    arity: ClassVar[int]

    @abstractmethod
    def propose(
        self, parents: Sequence[Program], context: Context, rng: np.random.Generator
    ) -> Child:
        """A valid child that differs canonically from ``parents[0]``.

        Raises:
            NoChild: this operator cannot make such a child from these parents.
        """

    def _check_arity(self, parents: Sequence[Program]) -> None:
        if len(parents) < self.arity:
            raise ValueError(f"{self.name} needs {self.arity} parent(s), got {len(parents)}")

    def _finish(
        self, source: str, parents: Sequence[Program], context: Context, description: str
    ) -> Child:
        """Validate ``source`` against the first parent and wrap it as a :class:`Child`."""
        try:
            child_id = validate_child(source, parents[0].source, block=context.block)
        except ValidationError as e:
            raise NoChild(f"{self.name}: {e}") from None
        return Child(
            source=source,
            operator=self.name,
            parents=tuple(p.id for p in parents[: max(self.arity, 1)]),
            description=description,
            id=child_id,
        )


def replace_statements(p: Parsed, new_stmts: dict[int, cst.CSTNode]) -> str:
    """Render ``p`` with top-level statements replaced, and cache the child's module.

    Only the replaced statements' code is generated; the rest of the text is the parent's,
    byte for byte, so a child's diff shows only its edit.
    """
    module, layout = p.module, p.layout
    body = list(module.body)
    for i, stmt in new_stmts.items():
        body[i] = stmt
    child_module = module.with_changes(body=body)
    if not layout.spliceable:
        source = child_module.code
        remember(source, child_module)
        return source
    chunks = {i: module.code_for_node(stmt) for i, stmt in new_stmts.items()}
    source = layout.render(chunks)
    remember(source, child_module, [chunks.get(i, c) for i, c in enumerate(layout.chunks)], layout)
    return source


def render_body(
    p: Parsed,
    body: Sequence[cst.BaseStatement],
    footer: Sequence[cst.EmptyLine] | None = None,
    texts: Mapping[int, str] | None = None,
) -> str:
    """Render ``p``'s module with a new body (statements added, removed or reordered).

    When ``p``'s layout is spliceable, a statement that is one of ``p``'s own nodes keeps its
    chunk, and so does one whose ``id`` is in ``texts`` (the text of a node from another
    module); only the other statements (and a new ``footer``) are generated. The text is then
    ``module.code`` of the new module byte for byte, except for the nodes given in ``texts``.
    """
    module, layout = p.module, p.layout
    child_module = module.with_changes(body=tuple(body))
    if footer is not None:
        child_module = child_module.with_changes(footer=tuple(footer))
    # not spliced: a parent without statements (its layout's header is its whole text), and a
    # new footer on a module without a final newline (its code drops the footer's last newline)
    if layout.spliceable and module.body and (footer is None or module.has_trailing_newline):
        known = {id(s): c for s, c in zip(module.body, layout.chunks, strict=True)}
        if texts:
            known.update(texts)
        chunks = [known[id(s)] if id(s) in known else module.code_for_node(s) for s in body]
        tail = (
            layout.footer
            if footer is None
            else "".join(module.code_for_node(line) for line in footer)
        )
        source = layout.header + "".join(chunks) + tail
        if source:  # an empty module's code is a newline
            remember(source, child_module, chunks, Layout(layout.header, (), tail, True))
            return source
    source = child_module.code
    remember(source, child_module)
    return source


def parent_parsed(program: Program) -> Parsed:
    """The cached parse of a parent; a parent the parser rejects cannot be edited."""
    p = parsed(program.source)
    try:
        p.module  # noqa: B018
    except ValidationError as e:
        raise NoChild(f"parent {program.id[:12]} cannot be parsed: {e}") from None
    return p
