"""Make children from parents: validation and canonical form, structural mutation and
crossover, edit descriptors, and the program file's form on disk.

Every child, from any operator, goes through :func:`validate_child` (syntax, encoding, evolve
block, no-op) and is identified by :func:`canonical_hash`; :func:`edit_descriptors` describes
its edit relative to the seed for the archive's niches. :func:`decode_source` and
:func:`encode_source` turn the evolving file's bytes into text and a program's text back into
bytes of the same form (encoding, byte-order mark, line endings); :func:`block_span` applies
the EVOLVE-BLOCK marker rules.

Example:
    >>> import numpy as np
    >>> from archive.program import Program
    >>> seed = "LEARNING_RATE = 0.003\\n"
    >>> ctx = Context(seed_source=seed)
    >>> ops = build_operators({"constants": 1.0}, ctx)
    >>> parent = Program(id=canonical_hash(seed), source=seed, fidelity="tiny")
    >>> child = ops[0][0].propose([parent], ctx, np.random.default_rng(0))
    >>> child.description.startswith("LEARNING_RATE: 0.003 -> ")
    True
"""

from operators.base import Child, Context, Operator
from operators.descriptors import EditDescriptors, edit_descriptors, regions, size_bin
from operators.encoding import FileForm, SourceDecodeError, decode_source, encode_source
from operators.errors import NoChild, OperatorConfigError, ValidationError
from operators.markers import block_span
from operators.merge import MergeResult, ThreeWayMerge, three_way_merge
from operators.mutate_choice import MutateChoice
from operators.mutate_constants import MutateConstants
from operators.parsed import clear_cache
from operators.registry import OPERATORS, build_operators, check_context
from operators.space import Param, infer_space, read_point
from operators.toggle_flag import ToggleFlag
from operators.tpe import LocalSampleConstants, SampleConstants
from operators.uniform_crossover import UniformCrossover
from operators.validate import canonical_hash, canonical_source, is_duplicate, parse, validate_child

__all__ = [
    "OPERATORS",
    "Child",
    "Context",
    "EditDescriptors",
    "FileForm",
    "MergeResult",
    "MutateChoice",
    "MutateConstants",
    "LocalSampleConstants",
    "NoChild",
    "Operator",
    "OperatorConfigError",
    "Param",
    "SampleConstants",
    "SourceDecodeError",
    "ThreeWayMerge",
    "ToggleFlag",
    "UniformCrossover",
    "ValidationError",
    "block_span",
    "build_operators",
    "canonical_hash",
    "canonical_source",
    "check_context",
    "clear_cache",
    "decode_source",
    "edit_descriptors",
    "encode_source",
    "infer_space",
    "is_duplicate",
    "parse",
    "read_point",
    "regions",
    "size_bin",
    "three_way_merge",
    "validate_child",
]
