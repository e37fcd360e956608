"""Load a target: a folder with ``target.toml``, or an OpenEvolve-style folder.

The contract is documented in ``targets/README.md``. Everything here is validated when the
target is loaded, so a bad ``target.toml`` is a one-line :class:`TargetError` naming the file
and key before any evaluation starts.
"""

from __future__ import annotations

import ast
import hashlib
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from operators.encoding import FileForm, SourceDecodeError, decode_source, encode_source
from operators.errors import ValidationError
from operators.markers import BLOCK_END, BLOCK_START, block_span

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

OPENEVOLVE_RUNNER = Path(__file__).parent / "evaluation" / "openevolve_runner.py"
"""Trusted runner copied beside an OpenEvolve-layout program; it calls ``evaluate()``."""

_DIRECTIONS = ("minimize", "maximize")

OPENEVOLVE_STAGES = ("stage1", "stage2", "stage3")
"""Fidelities of an OpenEvolve folder whose evaluator defines ``evaluate_stage1`` ... ``3``."""


class TargetError(ValueError):
    """A target folder or its ``target.toml`` is unusable; the message names file and key."""


@dataclass(frozen=True)
class Fidelity:
    """One fidelity level: extra environment, extra arguments and a timeout."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    timeout: float = 60.0


@dataclass(frozen=True)
class DescriptorSpec:
    """A metric the program reports that is used as a niche descriptor."""

    name: str
    range: tuple[float, float] | None = None  # numeric descriptor: binned over this range
    bins: int = 10
    categories: tuple[str, ...] | None = None  # categorical descriptor


@dataclass(frozen=True)
class Target:
    """A trusted description of what evolves and how it is scored.

    Attributes:
        root: the target folder.
        name: short name, from ``target.toml`` or the folder name.
        description: the task, in words, for reports and LLM prompts.
        evolve: the evolving file, relative to ``root`` (one file in this version).
        harness: trusted files copied read-only beside the child, relative to ``root``.
        command: argv; ``{python}`` is replaced by the running interpreter, ``{program}`` by
            the evolving file's name.
        metric: the fitness metric's key in the result JSON.
        direction: ``minimize`` or ``maximize``.
        timeout: seconds per evaluation unless the fidelity or the run overrides it.
        fidelities: levels by name; ``default_fidelity`` is used when none is asked for.
        descriptors: reported metrics used as niche descriptors (empty: edit descriptors).
        ranges: ``NAME -> (low, high)`` bounds for constants the structural operators mutate.
        choices: ``NAME -> alternatives`` for names/strings the structural operators swap.
        droppable: top-level statement names the operators may drop or duplicate.
        niches: the archive's default niche dims: names among ``region``, ``edit_size_bin``
            and ``descriptors``; empty means every descriptor, or the edit descriptors when
            there are none.
        block: True when only the ``EVOLVE-BLOCK-START``/``END`` region evolves (the seed's
            markers were checked against :mod:`operators.markers`' rules at load time).
        result: ``"file"``: the program writes its result to ``$EVO_RESULT``; ``"channel"``:
            a trusted harness in the program's process reports it through the result
            channel, which the program is not handed (:mod:`evo.evaluation.channel`).
        network: True when the program needs the network inside the sandbox.
        form: how the evolving file is stored (encoding, byte-order mark, line ending), found
            when the target loaded; every child is written in it (:meth:`file_bytes`).
    """

    root: Path
    name: str
    description: str
    evolve: str
    harness: tuple[str, ...]
    command: tuple[str, ...]
    metric: str
    direction: str
    timeout: float
    fidelities: dict[str, Fidelity]
    default_fidelity: str
    descriptors: tuple[DescriptorSpec, ...] = ()
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    droppable: tuple[str, ...] = ()
    block: bool = False
    niches: tuple[str, ...] = ()  # default niche dims; () = the descriptors, else edit descriptors
    extra_harness: tuple[Path, ...] = ()  # absolute trusted files from outside root (runners)
    result: str = "file"
    network: bool = False
    form: FileForm = FileForm()

    @property
    def seed_path(self) -> Path:
        return self.root / self.evolve

    def seed_source(self) -> str:
        """The seed's text (``\\n`` line endings), decoded in the encoding found at load time.

        Raises:
            TargetError: the file is unreadable or no longer decodes (the byte is named).
        """
        return _read_program(self.seed_path, self.form.encoding)[0]

    def file_bytes(self, source: str) -> bytes:
        """The evolving file's bytes for program text ``source``, in the seed's :attr:`form`.

        Raises:
            ValidationError: ``kind="encoding"``: a character the file's encoding cannot hold.
        """
        return encode_source(source, self.form)

    def harness_paths(self) -> list[Path]:
        """Absolute paths of every trusted file copied beside a child."""
        return [self.root / h for h in self.harness] + list(self.extra_harness)

    def with_space(
        self, ranges: Mapping[str, Sequence[float]], choices: Mapping[str, Sequence[str]]
    ) -> Target:
        """This target with a run's ``[ranges]`` and ``[choices]`` laid over its own: a run's
        entry replaces the target's entry of the same name (how a run states the space it
        wants searched, e.g. for an OpenEvolve folder, which has no target.toml).

        Example:
            >>> from evo.config import BUILTIN_TARGETS
            >>> t = load_target(BUILTIN_TARGETS / "tinygpt")
            >>> t.with_space({"LR": [1e-4, 0.1]}, {}).ranges["LR"]
            (0.0001, 0.1)
        """
        if not ranges and not choices:
            return self
        return replace(
            self,
            ranges={**self.ranges, **{k: (v[0], v[1]) for k, v in ranges.items()}},
            choices={**self.choices, **{k: tuple(v) for k, v in choices.items()}},
        )

    def fidelity(self, name: str | None) -> Fidelity:
        name = name or self.default_fidelity
        if name not in self.fidelities:
            raise TargetError(
                f"{self.root / 'target.toml'}: unknown fidelity {name!r}; "
                f"choose one of {sorted(self.fidelities)}"
            )
        return self.fidelities[name]

    def argv(self, fidelity: Fidelity) -> list[str]:
        subs = {"{python}": sys.executable, "{program}": Path(self.evolve).name}
        return [subs.get(a, a) for a in self.command] + list(fidelity.args)

    def checksums(self) -> dict[str, str]:
        """sha256 of the seed and every harness file, for ``environment.json``."""
        out = {self.evolve: _sha256(self.seed_path)}
        for p in self.harness_paths():
            out[p.name] = _sha256(p)
        return out

    def better(self, a: float, b: float) -> bool:
        """True when fitness ``a`` is strictly better than ``b``."""
        return a < b if self.direction == "minimize" else a > b


def range_problem(value: Any) -> str | None:
    """What is wrong with a ``[low, high]`` entry of ``[ranges]`` (target.toml or a run's
    config), or None: two finite numbers, not booleans, ``low <= high``.

    Example:
        >>> range_problem([2, 1])
        'has low > high (2 > 1); swap them'
    """
    numbers = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
    )
    if not numbers:
        return f"must be [low, high] numbers, got {value!r}"
    if not all(math.isfinite(x) for x in value):
        return f"must be finite numbers, got {value!r}"
    if value[0] > value[1]:
        return f"has low > high ({value[0]} > {value[1]}); swap them"
    return None


def choices_problem(value: Any) -> str | None:
    """What is wrong with an entry of ``[choices]``, or None: a list of at least two different
    strings (the code written for the constant)."""
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        return f"must be a list of strings (the alternatives), got {value!r}"
    if len(set(value)) < 2:
        return f"needs at least two different alternatives, got {value!r}"
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_program(path: Path, encoding: str | None = None) -> tuple[str, FileForm]:
    """The text and form of the evolving file at ``path``, as Python would decode it."""
    try:
        return decode_source(path.read_bytes(), encoding)
    except OSError as e:
        raise TargetError(f"{path}: cannot read it ({e.strerror or e}); check the file") from None
    except SourceDecodeError as e:
        raise TargetError(f"{path}: {e}") from None


def _block(path: Path, text: str, why: str = "") -> bool:
    """True when ``text`` has an evolve block; a one-line error when its markers are bad."""
    try:
        return block_span(text) is not None
    except ValidationError as e:
        raise TargetError(f"{path}: {e}{why}") from None


def load_target(path: str | Path) -> Target:
    """Load the target in folder ``path`` (or the folder of a ``target.toml`` file).

    Raises:
        TargetError: the folder is missing, or its description is invalid.
    """
    root = Path(path)
    if root.is_file() and root.name == "target.toml":
        root = root.parent
    if not root.is_dir():
        raise TargetError(
            f"{root}: no such target folder; pass a folder holding target.toml "
            "or an OpenEvolve-style initial_program.py + evaluator.py"
        )
    root = root.resolve()
    toml_path = root / "target.toml"
    if toml_path.is_file():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise TargetError(f"{toml_path}: not valid TOML ({e}); fix the syntax") from None
        return _from_toml(root, toml_path, data)
    if (root / "initial_program.py").is_file() and (root / "evaluator.py").is_file():
        return _from_openevolve(root)
    raise TargetError(
        f"{root}: not a target; it needs target.toml, or initial_program.py and "
        "evaluator.py (OpenEvolve layout)"
    )


class _Reader:
    """Typed access to one TOML table; every error names the file and the dotted key."""

    def __init__(self, file: Path, table: dict[str, Any], prefix: str = ""):
        self.file, self.table, self.prefix = file, table, prefix

    def fail(self, key: str, msg: str) -> TargetError:
        return TargetError(f"{self.file}: key '{self.prefix}{key}' {msg}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(key, f"must be {names}, got {type(value).__name__} {value!r}")
        return value

    def str_list(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, (list, str), default)
        if isinstance(value, str):
            value = [value]
        if not all(isinstance(v, str) for v in value):
            raise self.fail(key, "must be a list of strings")
        return tuple(value)

    def sub(self, key: str) -> _Reader:
        return _Reader(self.file, self.get(key, dict, {}), f"{self.prefix}{key}.")

    def only(self, *known: str) -> None:
        """Refuse keys of this table that are not ``known`` (a typo must not pass silently)."""
        unknown = sorted(set(self.table) - set(known))
        if unknown:
            raise self.fail(unknown[0], f"is not a known key here; known keys: {list(known)}")


_TOP_KEYS = {
    "name",
    "description",
    "evolve",
    "harness",
    "command",
    "metric",
    "direction",
    "timeout",
    "default_fidelity",
    "fidelity",
    "descriptors",
    "ranges",
    "choices",
    "droppable",
    "block",
    "niches",
    "result",
    "network",
}
RESULT_KINDS = ("file", "channel")
EDIT_DESCRIPTORS = ("region", "edit_size_bin")


def _from_toml(root: Path, file: Path, data: dict[str, Any]) -> Target:
    r = _Reader(file, data)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise r.fail(unknown[0], f"is not a target key; known keys: {sorted(_TOP_KEYS)}")
    evolve = r.str_list("evolve")
    if len(evolve) != 1:
        raise r.fail(
            "evolve", "must name exactly one evolving file (multi-file is not supported yet)"
        )
    if not (root / evolve[0]).is_file():
        raise r.fail("evolve", f"names {evolve[0]!r}, which is not a file in {root}")
    seed_text, form = _read_program(root / evolve[0])
    block = r.get("block", bool, False)
    if block and not _block(root / evolve[0], seed_text, f" ({file.name} sets block = true)"):
        raise r.fail(
            "block",
            f"is true but {evolve[0]} has no {BLOCK_START}/{BLOCK_END} comment lines; add "
            "them around the code that evolves, or set block = false",
        )
    harness = r.str_list("harness", ())
    for h in harness:
        if not (root / h).is_file():
            raise r.fail("harness", f"names {h!r}, which is missing from {root}; restore it")
        if h == evolve[0]:
            raise r.fail("harness", f"names the evolving file {h!r}; a harness file is read-only")
    command = r.str_list("command", ("{python}", "{program}"))
    if not command:
        raise r.fail("command", "must not be empty")
    direction = r.get("direction", str, "minimize")
    if direction not in _DIRECTIONS:
        raise r.fail("direction", f"must be one of {list(_DIRECTIONS)}, got {direction!r}")
    timeout = r.get("timeout", float, 60.0)
    if timeout <= 0:
        raise r.fail("timeout", f"must be > 0 seconds, got {timeout}")
    result = r.get("result", str, "file")
    if result not in RESULT_KINDS:
        raise r.fail("result", f"must be one of {list(RESULT_KINDS)}, got {result!r}")

    fid_table = r.sub("fidelity")
    fidelities: dict[str, Fidelity] = {}
    for name in fid_table.table:
        fr = fid_table.sub(name)
        fr.only("env", "args", "timeout")
        env = fr.get("env", dict, {})
        for k, v in env.items():
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise fr.fail(f"env.{k}", "must be a string or number")
        ftimeout = fr.get("timeout", float, timeout)
        if ftimeout <= 0:
            raise fr.fail("timeout", f"must be > 0 seconds, got {ftimeout}")
        fidelities[name] = Fidelity(
            name=name,
            env={k: str(v) for k, v in env.items()},
            args=fr.str_list("args", ()),
            timeout=ftimeout,
        )
    if not fidelities:
        fidelities["default"] = Fidelity(name="default", timeout=timeout)
    default_fidelity = r.get("default_fidelity", str, next(iter(fidelities)))
    if default_fidelity not in fidelities:
        raise r.fail(
            "default_fidelity",
            f"names {default_fidelity!r}; defined fidelities: {sorted(fidelities)}",
        )

    descriptors = []
    desc_table = r.sub("descriptors")
    for name in desc_table.table:
        dr = desc_table.sub(name)
        dr.only("range", "bins", "categories")
        cats = dr.get("categories", list, None)
        rng = dr.get("range", list, None)
        if (cats is None) == (rng is None):
            raise dr.fail("range", "or 'categories' must be given (exactly one of them)")
        if cats is not None and (len(cats) < 2 or not all(isinstance(c, str) for c in cats)):
            raise dr.fail("categories", "must list at least two labels (strings)")
        if rng is not None:
            if len(rng) != 2 or not all(isinstance(x, (int, float)) for x in rng):
                raise dr.fail("range", "must be [low, high]")
            if rng[0] >= rng[1]:
                raise dr.fail("range", f"has low >= high ({rng[0]} >= {rng[1]}); swap them")
        bins = dr.get("bins", int, 10)
        if bins < 1:
            raise dr.fail("bins", "must be >= 1")
        descriptors.append(
            DescriptorSpec(
                name=name,
                range=tuple(map(float, rng)) if rng else None,
                bins=bins,
                categories=tuple(map(str, cats)) if cats else None,
            )
        )

    ranges: dict[str, tuple[float, float]] = {}
    rr = r.sub("ranges")
    for name, rng in rr.table.items():
        problem = range_problem(rng)
        if problem:
            raise rr.fail(name, problem)
        ranges[name] = (rng[0], rng[1])
    choices: dict[str, tuple[str, ...]] = {}
    cr = r.sub("choices")
    for name in cr.table:
        alts = cr.str_list(name)
        problem = choices_problem(list(alts))
        if problem:
            raise cr.fail(name, problem)
        choices[name] = alts

    niches = r.str_list("niches", ())
    known = set(EDIT_DESCRIPTORS) | {d.name for d in descriptors}
    for n in niches:
        if n not in known:
            raise r.fail("niches", f"names {n!r}; allowed: {sorted(known)}")

    return Target(
        root=root,
        name=r.get("name", str, root.name),
        description=r.get("description", str, ""),
        evolve=evolve[0],
        harness=harness,
        command=command,
        metric=r.get("metric", str),
        direction=direction,
        timeout=timeout,
        fidelities=fidelities,
        default_fidelity=default_fidelity,
        descriptors=tuple(descriptors),
        ranges=ranges,
        choices=choices,
        droppable=r.str_list("droppable", ()),
        block=block,
        niches=niches,
        result=result,
        network=r.get("network", bool, False),
        form=form,
    )


def openevolve_stages(evaluator: Path) -> tuple[str, ...]:
    """The cascade stages ``evaluator`` defines, in order: ``"stageN"`` for each top-level
    ``evaluate_stageN`` (a ``def``, an assignment or an import, also under a top-level
    ``if``/``try``). Read from the syntax tree, never imported: evo's process runs no
    evaluator code. A file that does not parse has none (the runner then reports why)."""
    try:
        tree = ast.parse(evaluator.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return ()
    names: set[str] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field_name in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field_name, []):
                    todo.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return tuple(s for s in OPENEVOLVE_STAGES if f"evaluate_{s}" in names)


def _from_openevolve(root: Path) -> Target:
    """An OpenEvolve folder: ``initial_program.py`` + ``evaluator.py`` with ``evaluate(path)``.

    Fidelities: ``default`` runs ``evaluate``; each ``evaluate_stageN`` the evaluator defines
    adds a fidelity ``stageN`` (the runner picks the function by ``EVO_FIDELITY``), which a
    cascade (set up from OpenEvolve's ``cascade_evaluation``, see
    :mod:`evo.openevolve_config`) runs in order.
    """
    seed_path = root / "initial_program.py"
    seed_text, form = _read_program(seed_path)
    block = _block(seed_path, seed_text)  # no markers: the whole file evolves, as in OpenEvolve
    harness = tuple(
        p.name
        for p in sorted(root.iterdir())
        if p.is_file() and p.suffix == ".py" and p.name != "initial_program.py"
    )
    desc = ""
    for name in ("README.md", "problem.md"):
        if (root / name).is_file():
            desc = (root / name).read_text(encoding="utf-8", errors="replace")[:4000]
            break
    fidelities = {
        name: Fidelity(name=name, timeout=300.0)
        for name in (*openevolve_stages(root / "evaluator.py"), "default")
    }
    return Target(
        root=root,
        name=root.name,
        description=desc,
        evolve="initial_program.py",
        harness=harness,
        command=("{python}", OPENEVOLVE_RUNNER.name, "evaluator.py", "{program}"),
        metric="combined_score",
        direction="maximize",
        timeout=300.0,
        fidelities=fidelities,
        default_fidelity="default",
        block=block,
        extra_harness=(OPENEVOLVE_RUNNER,),
        result="channel",
        form=form,
    )


def is_openevolve_folder(root: Path) -> bool:
    """True when ``root`` loads as an OpenEvolve-layout target (no ``target.toml``)."""
    return (
        not (root / "target.toml").is_file()
        and (root / "initial_program.py").is_file()
        and (root / "evaluator.py").is_file()
    )
