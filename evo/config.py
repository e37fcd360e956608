"""The run configuration: TOML sections, defaults, validation, and the resolved file.

Every key is listed in ``DEFAULTS`` with its default; the README documents each one. A config is
validated completely before anything starts: an unknown key, a wrong type or a value out of range
is a :class:`ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from archive import EXPLOIT, STRATEGIES
from evo.cascade import RULES as CASCADE_RULES
from evo.emitter import PATIENCE
from evo.emitter import SHARE as EMITTER_SHARE
from evo.evaluation import BACKENDS, SANDBOX_KINDS
from evo.target import choices_problem, range_problem

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_TARGETS = PACKAGE_ROOT / "targets"
DEFAULT_TARGET = "tinygpt"

SELECTIONS = STRATEGIES

DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {
        "target": DEFAULT_TARGET,  # a target folder, or the name of a built-in target
        "run_dir": "",  # default: runs/<target name>
        "fidelity": "",  # default: the target's default_fidelity
        "evaluations": 16,  # budget: evaluation runs (each seed of each program counts)
        "hours": 0.0,  # budget: wall-clock hours, 0 = no limit
        "dollars": 0.0,  # budget: LLM spend; 0 = $10 when a model is priced, else none
        "seed": 0,  # seeds the operators and parent selection
        "timeout": 0.0,  # seconds per evaluation, 0 = the fidelity's
        "memory_mb": 0,  # memory limit per child, 0 = none
        "pass_env": ["TINYGPT_DATA", "EVO_DEVICE"],  # variables passed on to every child
        "openevolve_config": "",  # an OpenEvolve config.yaml read under this config's keys
    },
    "archive": {
        "descriptors": [],  # [] = the target's, else the edit descriptors region x edit_size_bin
        "edit_size_bins": 8,  # bins of the log2 edit-size descriptor
        "selection": "mixed",  # mixed | uniform | weighted | greedy
        "exploit": EXPLOIT,  # mixed: share of first parents taken from the best elite
        "emitter": EMITTER_SHARE,  # mixed: share of children the climbing emitter makes
        "patience": PATIENCE,  # emitter: children in a row no better than its head, then restart
    },
    "operators": {  # weights: the bandit's priors (BENCHMARKS.md, seventh session)
        "constants": 0.25,
        "tpe": 2.0,
        "tpe_local": 0.25,
        "choice": 0.25,
        "toggle": 0.1,
        "uniform_crossover": 0.15,
        "merge": 0.25,
        "llm_mutation": 1.0,  # used only when [llm] base_url is set
        "llm_crossover": 0.5,
    },
    "bandit": {
        "enabled": True,  # learn operator shares from their children's results
        "floor": 0.03,  # the lowest share of any operator (capped at 0.5 / operators)
        "initial_design": 8,  # first children from tpe's random draws (at most evaluations/10)
    },
    "noise": {
        "seeds": 3,  # seeds the baseline is measured with: its spread is the noise floor
        "gate": 2.0,  # a would-be elite whose margin is under gate x noise gets more seeds
        "max_seeds": 3,  # seeds a gated candidate is evaluated with in all
        "z": 1.0,  # cells compare fitness -/+ z x standard error (a confidence bound)
    },
    "cascade": {
        "levels": [],  # fidelities, cheapest first; [] = no cascade (run.fidelity only)
        "promote": "top",  # top | beats_incumbent | threshold
        "top_fraction": 0.2,  # top: this fraction of a level's elites (at least one) moves up
        "reserve": [],  # slots kept for each level above the first, e.g. [1]
        "thresholds": [],  # threshold: the fitness a program needs at each level but the last
    },
    "llm": {},  # validated by operators.llm.LLMConfig: see the README's [llm] keys
    "ranges": {},  # NAME = [low, high]: bounds of a constant, over the target's [ranges]
    "choices": {},  # NAME = ["a", "b", ...]: a constant's alternatives, over the target's
    "backend": {
        "kind": "local",  # local | ray
        "workers": 0,  # parallel slots; 0 = one per GPU, else CPU cores / 1 thread each
        "address": "",  # ray: "" starts a local instance; "auto", "host:port", "ray://host:port"
        "gpus_per_task": 0.0,  # ray: 0 = one GPU per evaluation when the cluster has GPUs
        "cpus_per_task": 0,  # ray: 0 = share the cores among the slots
    },
    "log": {
        "tensorboard": False,  # TensorBoard event files in RUN_DIR/tensorboard
        "wandb": "",  # a Weights & Biases project name ("" = off); needs `pip install wandb`
        "mlflow": "",  # an MLflow tracking URI, e.g. "file:./mlruns" ("" = off); needs mlflow
    },
    "sandbox": {
        "kind": "auto",  # auto (bubblewrap when it works here) | bwrap (required) | none
        "network": False,  # let children use the network (a target can opt in alone)
        "read": [],  # absolute paths kept visible (read-only) inside hidden dirs (home)
    },
}

# Keys that may change when a run is resumed: budgets and resources, not what is searched.
RESUMABLE_KEYS = {
    ("run", k)
    for k in (
        "evaluations",
        "hours",
        "dollars",
        "run_dir",
        "timeout",
        "memory_mb",
        "pass_env",
        "openevolve_config",  # where keys came from; the keys themselves are compared
    )
} | {("backend", k) for k in ("workers", "kind", "address", "gpus_per_task", "cpus_per_task")}
RESUMABLE_KEYS |= {("sandbox", k) for k in DEFAULTS["sandbox"]}
RESUMABLE_KEYS |= {("log", k) for k in DEFAULTS["log"]}
# Added after runs existed, so that those runs still resume: keys left out of the fingerprint
# at their default, and sections (of resumable keys only) left out of it altogether (an empty
# [backend] stays in, as it always was). validate() fills both into a config dict made before.
_LATER_KEYS = {
    ("cascade", "thresholds"): [],
    ("run", "openevolve_config"): "",
    ("archive", "emitter"): 0.0,  # the climbing emitter came later: off in a run made before
    ("archive", "patience"): PATIENCE,
}
LATER_SECTIONS = ("sandbox", "log")
# Defaults changed after runs existed (the seventh session's operator weights, the ninth's
# climbing emitter; BENCHMARKS.md): a section holding every new default is fingerprinted
# with the old values, so a default run made before still resumes (and goes on with the new
# defaults, as after any code change).
_CHANGED_DEFAULTS = {
    "operators": {
        "constants": 1.0,
        "tpe": 1.0,
        "tpe_local": 1.0,
        "choice": 0.5,
        "toggle": 0.2,
        "uniform_crossover": 0.3,
        "merge": 0.5,
    },
    "archive": {"emitter": 0.0},  # the ninth session's climbing emitter
}
# Added later too, but they define what is searched: left out of the fingerprint only when empty.
LATER_SPACE = ("ranges", "choices")

YAML_SUFFIXES = (".yaml", ".yml")


class ConfigError(ValueError):
    """The config is invalid; the message names the file (when there is one) and the key."""


def default_config() -> dict[str, dict[str, Any]]:
    return copy.deepcopy(DEFAULTS)


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Read ``path``, apply ``overrides`` and validate.

    Layers, each over the one before: the defaults; an OpenEvolve folder's ``config.yaml``
    (see :mod:`evo.openevolve_config`); the run.toml; the overrides (the flags).

    Args:
        path: a run.toml; an OpenEvolve ``*.yaml`` (the run's target is the folder holding
            it); or None for the defaults. Without a run.toml, an OpenEvolve-layout target's
            own ``config.yaml`` is read; a run.toml reads the YAML it names in
            ``run.openevolve_config``.
        overrides: ``"section.key" -> value`` pairs (from CLI flags); None values are ignored.

    Returns:
        The resolved config: every section and key, defaults filled in.
    """
    from evo.openevolve_config import find_layer

    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    where = str(path) if path else "config"
    cfg = default_config()
    data: dict[str, Any] = {}
    yaml_path = None
    if path is not None:
        p = Path(path)
        if p.suffix.lower() in YAML_SUFFIXES:
            yaml_path = p
        else:
            data = _read_toml(p)
            run = data.get("run") if isinstance(data.get("run"), dict) else {}
            for key in ("target", "openevolve_config"):
                # A relative path in a config file is relative to that file.
                value = run.get(key)
                if isinstance(value, str) and value and not Path(value).is_absolute():
                    if (p.parent / value).exists():
                        run[key] = str((p.parent / value).resolve())
    run_table = data.get("run") if isinstance(data.get("run"), dict) else {}
    target = overrides.get("run.target") or run_table.get("target")
    if not target:
        target = str(yaml_path.parent) if yaml_path is not None else DEFAULT_TARGET
    named = overrides.get("run.openevolve_config") or run_table.get("openevolve_config")
    if yaml_path is None and isinstance(named, str) and named:
        yaml_path = Path(named)
    layer = None
    if isinstance(target, str):
        layer = find_layer(target, yaml_path, auto=path is None)
    if layer is not None:
        layer_where = str(layer.path or layer.folder)
        try:
            _merge(cfg, layer.nested(), layer_where)
        except ConfigError as e:
            raise _blamed(e, layer_where, layer) from None
        cfg["run"]["openevolve_config"] = str(layer.path or "")
        if path is not None and yaml_path == Path(path):  # `evo run FOLDER/config.yaml`
            cfg["run"]["target"] = str(layer.folder)
    _merge(cfg, data, where)
    apply_overrides(cfg, overrides)
    try:
        validate(cfg, where)
    except ConfigError as e:
        # A value a flag or a config.yaml set is theirs, not the file's: say so.
        given = any(f"'{k}'" in str(e) for k in overrides)
        if given and str(e).startswith(f"{where}: "):
            raise ConfigError(f"command line: {str(e)[len(where) + 2 :]}") from None
        if layer is not None and layer.path is not None:
            kept = {k for k in layer.values if _unchanged(k, data, overrides)}
            raise _blamed(e, where, layer, kept) from None
        raise
    return cfg


def _read_toml(p: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({e}); fix the syntax") from None


def _unchanged(dotted: str, data: dict, overrides: dict) -> bool:
    """True when neither the run.toml ``data`` nor the ``overrides`` set ``dotted``."""
    section, key = dotted.split(".", 1)
    table = data.get(section)
    return dotted not in overrides and not (isinstance(table, dict) and key in table)


def _blamed(e: ConfigError, where: str, layer: Any, keys: set[str] | None = None) -> ConfigError:
    """``e`` (about evo's key K) said of the YAML key K came from, when the YAML set K."""
    msg = str(e)
    body = msg[len(where) + 2 :] if msg.startswith(f"{where}: ") else msg
    for evo_key, yaml_key in layer.sources.items():
        if keys is not None and evo_key not in keys:
            continue
        if f"'{evo_key}'" in body or body.startswith(f"{evo_key}:") or f"{evo_key}[" in body:
            return ConfigError(f"{layer.path}: '{yaml_key}' (evo's {evo_key}): {body}")
    return e


def apply_overrides(cfg: dict, overrides: dict[str, Any]) -> None:
    """Set ``"section.key" -> value`` pairs in ``cfg`` (None values are ignored), with the
    same key and type checks as a config file's; the caller validates the result."""
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        _merge(cfg, {section: {key: value}}, "command line")


def _merge(cfg: dict, data: dict, where: str) -> None:
    for section, table in data.items():
        if section not in DEFAULTS:
            raise ConfigError(
                f"{where}: unknown section [{section}]; sections: {', '.join(DEFAULTS)}"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        if section == "llm":
            cfg["llm"] = {**cfg["llm"], **table}
            _llm_config(cfg, where)
            continue
        if section in LATER_SPACE:
            check = range_problem if section == "ranges" else choices_problem
            for name, value in table.items():
                problem = check(value)
                if problem:
                    raise ConfigError(f"{where}: '{section}.{name}' {problem}")
                cfg[section][name] = list(value)
            continue
        for key, value in table.items():
            if key not in DEFAULTS[section]:
                raise ConfigError(
                    f"{where}: unknown key '{section}.{key}'; "
                    f"keys of [{section}]: {', '.join(DEFAULTS[section])}"
                )
            default = DEFAULTS[section][key]
            if (
                isinstance(default, float)
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                value = float(value)
            if type(value) is not type(default):
                raise ConfigError(
                    f"{where}: '{section}.{key}' must be {type(default).__name__}, "
                    f"got {type(value).__name__} {value!r}"
                )
            cfg[section][key] = value


def validate(cfg: dict, where: str = "config") -> None:
    """Check ranges and allowed values; raise ConfigError naming the key."""
    for section in (*LATER_SECTIONS, *LATER_SPACE):
        cfg.setdefault(section, copy.deepcopy(DEFAULTS[section]))
    for (section, key), default in _LATER_KEYS.items():
        if isinstance(cfg.get(section), dict):
            cfg[section].setdefault(key, copy.deepcopy(default))

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            section, name = key.split(".")
            raise ConfigError(f"{where}: '{key}' {what}, got {cfg[section][name]!r}")

    run, arch, ops, noise, backend = (
        cfg[s] for s in ("run", "archive", "operators", "noise", "backend")
    )
    need(run["evaluations"] >= 1, "run.evaluations", "must be >= 1")
    need(run["hours"] >= 0, "run.hours", "must be >= 0 (0 = no limit)")
    need(run["dollars"] >= 0, "run.dollars", "must be >= 0 (0 = $10 when a model is priced)")
    need(run["timeout"] >= 0, "run.timeout", "must be >= 0 (0 = the fidelity's)")
    need(run["memory_mb"] >= 0, "run.memory_mb", "must be >= 0 (0 = no limit)")
    need(bool(run["target"]), "run.target", "must name a target folder or built-in target")
    need(
        all(isinstance(v, str) and v.isidentifier() for v in run["pass_env"]),
        "run.pass_env",
        "must be a list of environment variable names",
    )
    need(arch["selection"] in SELECTIONS, "archive.selection", f"must be one of {list(SELECTIONS)}")
    need(1 <= arch["edit_size_bins"] <= 32, "archive.edit_size_bins", "must be in 1..32")
    need(0 <= arch["exploit"] <= 1, "archive.exploit", "must be in [0, 1]")
    need(0 <= arch["emitter"] <= 1, "archive.emitter", "must be in [0, 1] (0 = no emitter)")
    need(arch["patience"] >= 1, "archive.patience", "must be >= 1")
    need(0 <= cfg["bandit"]["floor"] < 1, "bandit.floor", "must be in [0, 1)")
    need(cfg["bandit"]["initial_design"] >= 0, "bandit.initial_design", "must be >= 0")
    need(
        all(isinstance(d, str) for d in arch["descriptors"]),
        "archive.descriptors",
        "must be a list of descriptor names",
    )
    for name in DEFAULTS["operators"]:
        need(ops[name] >= 0, f"operators.{name}", "must be a weight >= 0")
    need(sum(ops.values()) > 0, "operators.constants", "all operator weights are 0; give one > 0")
    need(noise["seeds"] >= 1, "noise.seeds", "must be >= 1")
    need(noise["max_seeds"] >= 1, "noise.max_seeds", "must be >= 1")
    need(noise["gate"] >= 0, "noise.gate", "must be >= 0 (0 = no re-evaluation)")
    need(noise["z"] >= 0, "noise.z", "must be >= 0")
    cas = cfg["cascade"]
    need(
        cas["promote"] in CASCADE_RULES,
        "cascade.promote",
        f"must be one of {list(CASCADE_RULES)}",
    )
    need(
        all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
            for t in cas["thresholds"]
        ),
        "cascade.thresholds",
        "must be a list of numbers (the fitness a program needs to leave each level)",
    )
    need(
        cas["promote"] != "threshold"
        or not cas["levels"]
        or len(cas["thresholds"]) == len(cas["levels"]) - 1,
        "cascade.thresholds",
        f"must give one number per level above the first ({max(len(cas['levels']) - 1, 0)} "
        f"for levels {cas['levels']}) when promote = 'threshold'",
    )
    need(0 < cas["top_fraction"] <= 1, "cascade.top_fraction", "must be in (0, 1]")
    need(
        all(isinstance(v, str) for v in cas["levels"]),
        "cascade.levels",
        "must be a list of the target's fidelity names",
    )
    need(
        all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in cas["reserve"]),
        "cascade.reserve",
        "must be a list of slot counts >= 0",
    )
    need(backend["kind"] in BACKENDS, "backend.kind", f"must be one of {list(BACKENDS)}")
    need(backend["workers"] >= 0, "backend.workers", "must be >= 0 (0 = automatic)")
    need(backend["gpus_per_task"] >= 0, "backend.gpus_per_task", "must be >= 0 (0 = automatic)")
    need(backend["cpus_per_task"] >= 0, "backend.cpus_per_task", "must be >= 0 (0 = automatic)")
    box = cfg["sandbox"]
    need(box["kind"] in SANDBOX_KINDS, "sandbox.kind", f"must be one of {list(SANDBOX_KINDS)}")
    need(
        all(isinstance(v, str) and Path(v).is_absolute() for v in box["read"]),
        "sandbox.read",
        "must be a list of absolute paths",
    )
    cfg["llm"] = _llm_config(cfg, where).to_dict()


def _llm_config(cfg: dict, where: str) -> Any:
    from operators.llm import LLMConfig, LLMConfigError

    try:
        return LLMConfig.from_dict(cfg["llm"])
    except LLMConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def resolve_target_path(target: str) -> Path:
    """A folder path, or the name of a built-in target under targets/."""
    p = Path(target)
    if p.exists():
        return p.resolve()
    builtin = BUILTIN_TARGETS / target
    if builtin.is_dir():
        return builtin
    names = sorted(  # either layout: a target.toml, or an OpenEvolve folder
        d.name
        for d in BUILTIN_TARGETS.iterdir()
        if (d / "target.toml").is_file() or (d / "evaluator.py").is_file()
    )
    raise ConfigError(
        f"run.target: {target!r} is neither a folder nor a built-in target ({', '.join(names)})"
    )


def to_toml(cfg: dict) -> str:
    """The resolved config as TOML (every key written out)."""
    lines = []
    for section, table in cfg.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def search_fingerprint(cfg: dict) -> str:
    """Hash of every key that defines what is searched (budgets and resources excluded)."""
    kept = _searched(cfg)
    for s, before in _CHANGED_DEFAULTS.items():
        if s in kept and all(kept[s].get(k) == DEFAULTS[s][k] for k in before):
            kept[s] = {
                k: v
                for k, v in {**kept[s], **before}.items()
                if _LATER_KEYS.get((s, k), ...) != v  # a later key at its old value: left out
            }
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def search_changes(old: dict, new: dict) -> list[str]:
    """``"section.key: OLD -> NEW"`` for each key that defines what is searched and differs
    between two resolved configs (what made their fingerprints differ).

    Example:
        >>> search_changes(load_config(None, {}), load_config(None, {"operators.tpe": 3.0}))
        ['operators.tpe: 2.0 -> 3.0']
    """
    a, b = (json.loads(json.dumps(_searched(c), sort_keys=True)) for c in (old, new))
    unset = object()

    def shown(v: Any) -> str:
        return "(unset)" if v is unset else repr(v)

    out = []
    for section in sorted(a.keys() | b.keys()):
        ta, tb = a.get(section, {}), b.get(section, {})
        for key in sorted(ta.keys() | tb.keys()):
            x, y = ta.get(key, unset), tb.get(key, unset)
            if x != y:
                out.append(f"{section}.{key}: {shown(x)} -> {shown(y)}")
    return out


def _searched(cfg: dict) -> dict:
    """The sections and keys :func:`search_fingerprint` hashes."""
    kept = {
        s: {
            k: v
            for k, v in t.items()
            if (s, k) not in RESUMABLE_KEYS and _LATER_KEYS.get((s, k), ...) != v
        }
        for s, t in cfg.items()
    }
    kept = {
        s: t
        for s, t in kept.items()
        if s not in LATER_SECTIONS and not (s in LATER_SPACE and not t)
    }
    return kept
