"""OpenEvolve's ``config.yaml`` read as evo's config, and the cascade a staged evaluator gets.

``evo run FOLDER`` on an OpenEvolve-layout folder reads ``FOLDER/config.yaml`` when there is
one; ``evo run FOLDER/NAME.yaml`` reads that file, and a run.toml reads the file it names in
``run.openevolve_config``. Each YAML key with an equivalent sets evo's key (the README's
"OpenEvolve folders" section has the table); a run.toml's keys and the flags override them
(defaults < config.yaml < run.toml < flags). Every other key is named, dotted, in one warning
line when the run starts: nothing is dropped silently. A key written in the file
(``llm.api_key: sk-...``) is never used, stored or printed; ``${VAR}`` names the variable,
which becomes ``llm.api_key_env``.

OpenEvolve's cascade (``evaluator.cascade_evaluation``, on by default) needs no YAML: when
``evaluator.py`` defines ``evaluate_stage1`` and ``evaluate_stage2`` (and ``evaluate_stage3``),
the run's cascade levels are ``stage1``, ``stage2`` (, ``stage3``) with ``promote =
"threshold"`` and ``evaluator.cascade_thresholds`` (default ``[0.5, 0.75, 0.9]``, one per
level above the first), reproducing what OpenEvolve runs: no ``evaluate_stage1`` means
``evaluate`` alone; a stage whose predecessor is missing, or that has no threshold, is never
reached; ``evaluate_stage1`` alone scores every program.

Example:
    >>> layer = openevolve_layer(Path("examples/function_minimization"))  # doctest: +SKIP
    >>> layer.values["cascade.levels"]  # doctest: +SKIP
    ['stage1', 'stage2']
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evo.config import ConfigError, resolve_target_path
from evo.target import is_openevolve_folder, openevolve_stages

CONFIG_NAME = "config.yaml"
DEFAULT_THRESHOLDS = [0.5, 0.75, 0.9]  # OpenEvolve's evaluator.cascade_thresholds
DEFAULT_API_BASE = "https://api.openai.com/v1"  # OpenEvolve's llm.api_base
_ENV_REF = re.compile(r"^\$\{([^}]+)\}$")  # ${VAR}, the whole value (as OpenEvolve reads it)
_LITERAL_KEY = (
    "a key written in the file is never used or stored: export it and set "
    "llm.api_key_env to the variable's name"
)
# YAML values that are what evo does anyway: accepted without a warning.
_SAME_AS_EVO = {
    "language": "python",
    "file_suffix": ".py",
    "llm.manual_mode": False,
    "prompt.include_artifacts": True,
    "evaluator.enable_artifacts": True,
    "evaluator.use_llm_feedback": False,
    "evaluator.distributed": False,
}


@dataclass
class OpenEvolveLayer:
    """What an OpenEvolve folder (and its YAML, if any) sets in evo's config.

    Attributes:
        folder: the OpenEvolve-layout target folder.
        path: the YAML read, or None (the folder alone: its staged evaluator's cascade).
        values: ``"section.key" -> value`` in evo's config.
        sources: evo's key -> the YAML key it came from (for error messages).
        unused: YAML keys evo has no equivalent for, dotted, some with a reason.
        notes: stages the evaluator defines that OpenEvolve would never run, and why.
    """

    folder: Path
    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def nested(self) -> dict[str, dict[str, Any]]:
        """:attr:`values` as config sections, for :func:`evo.config.load_config`."""
        out: dict[str, dict[str, Any]] = {}
        for dotted, value in self.values.items():
            section, key = dotted.split(".", 1)
            out.setdefault(section, {})[key] = value
        return out

    def notice_lines(self) -> list[str]:
        """The lines a run prints when it starts: one naming every unused key, then notes."""
        where = self.path or self.folder / "evaluator.py"
        lines = []
        if self.unused:
            lines.append(f"{where}: keys evo does not use: {', '.join(self.unused)}")
        return lines + [f"{where}: {note}" for note in self.notes]

    def _set(self, evo_key: str, value: Any, yaml_key: str) -> None:
        self.values[evo_key] = value
        self.sources[evo_key] = yaml_key

    def _unused(self, key: str, why: str = "") -> None:
        self.unused.append(f"{key} ({why})" if why else key)

    def _fail(self, key: str, what: str, value: Any = ...) -> ConfigError:
        got = "" if value is ... else f", got {value!r}{_yaml_hint(value)}"
        return ConfigError(f"{self.path}: '{key}' must be {what}{got}")

    def _int(self, key: str, value: Any, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self._fail(key, f"an integer >= {low}", value)
        return value

    def _number(self, key: str, value: Any, low: float, *, open_low: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < low or (open_low and value == low):
            raise self._fail(key, f"a number {'>' if open_low else '>='} {low}", value)
        return float(value)

    def _bool(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def _str(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value


def _yaml_hint(value: Any) -> str:
    """A hint for numbers YAML 1.1 reads as text (``1e-3`` without a dot)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (YAML reads it as text; write it with a dot, e.g. 1.0e-3)"
    return ""


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in YAML file ``path``.

    Raises:
        ConfigError: one line naming the file and, for a syntax error, the line and column.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{path}: cannot read it ({e.__class__.__name__}); check the file"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(str(e.problem or e.context or "syntax error").split())
        if mark is None:
            raise ConfigError(f"{path}: not valid YAML ({what}); fix the syntax") from None
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        start = e.context_mark if e.problem and e.context else None
        if start is not None and start.line != mark.line:  # an unclosed [ or { further up
            where += f"; {' '.join(e.context.split())} that starts on line {start.line + 1}"
        raise ConfigError(
            f"{path}:{mark.line + 1}: not valid YAML: {what} ({where}); fix the syntax"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: must be a mapping of OpenEvolve keys (max_iterations: 100, llm: ...), "
            f"got a {type(data).__name__}"
        )
    return {str(k): v for k, v in data.items()}


def openevolve_layer(folder: Path, path: Path | None = None) -> OpenEvolveLayer:
    """What OpenEvolve folder ``folder`` and its YAML ``path`` (None: none) set in evo's config.

    Raises:
        ConfigError: a malformed YAML, or a value of the wrong type, named by file and key.
    """
    layer = OpenEvolveLayer(folder=folder, path=path)
    data = read_yaml(path) if path is not None else {}
    cascade: dict[str, Any] = {}
    for key, value in data.items():
        if key == "max_iterations":
            layer._set("run.evaluations", layer._int(key, value, 1), key)
        elif key == "random_seed":
            if value is not None:
                layer._set("run.seed", layer._int(key, value, 0), key)
        elif key == "diff_based_evolution":
            fmt = "search_replace" if layer._bool(key, value) else "whole_file"
            layer._set("llm.format", fmt, key)
        elif key == "llm":
            _map_llm(layer, _table(layer, key, value))
        elif key == "evaluator":
            cascade = _map_evaluator(layer, _table(layer, key, value))
        elif key == "database":
            _map_database(layer, _table(layer, key, value), data.get("random_seed"))
        elif key == "prompt":
            for k, v in _table(layer, key, value).items():
                if k == "num_diverse_programs":
                    layer._set("llm.inspirations", layer._int(f"prompt.{k}", v, 0), f"prompt.{k}")
                elif v is not None:
                    _leaf(layer, f"prompt.{k}", v)
        elif value is not None:  # a null sets nothing, in OpenEvolve as here
            _leaf(layer, key, value, section=True)
    _map_cascade(layer, cascade)
    return layer


def _table(layer: OpenEvolveLayer, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise layer._fail(key, "a mapping of keys", value)
    return {str(k): v for k, v in value.items()}


def _leaf(layer: OpenEvolveLayer, key: str, value: Any, section: bool = False) -> None:
    """A key without an equivalent: unused unless its value is what evo does anyway."""
    if key in _SAME_AS_EVO and value == _SAME_AS_EVO[key]:
        return
    layer._unused(f"{key}.*" if section and isinstance(value, dict) else key)


def _map_llm(layer: OpenEvolveLayer, llm: dict[str, Any]) -> None:
    models: list[dict[str, Any]] = []
    bases: list[tuple[str, str]] = []  # (YAML key, api_base) of each model that names one
    keys: list[tuple[str, str]] = []  # (YAML key, variable) of each ${VAR} key
    base = None
    named = {k: llm.get(k) for k in ("primary_model", "primary_model_weight")}
    named |= {k: llm.get(k) for k in ("secondary_model", "secondary_model_weight")}
    for key, value in llm.items():
        k = f"llm.{key}"
        if key == "api_base":
            if value is not None:
                base = layer._str(k, value)
        elif key == "api_key":
            top: list[tuple[str, str]] = []
            _api_key(layer, k, value, top)
            keys[:0] = top  # the section's own key before any model's
        elif key == "models":
            if value is None:
                continue
            if not isinstance(value, list):
                raise layer._fail(k, "a list of models ({name, weight})", value)
            for i, item in enumerate(value):
                _model(layer, f"{k}[{i}]", item, models, bases, keys)
        elif key in named:
            continue  # below, after `models`, as OpenEvolve appends them
        elif key == "temperature":
            if value is not None:
                layer._set("llm.temperature", layer._number(k, value, 0.0), k)
        elif key == "max_tokens":
            layer._set("llm.max_tokens", layer._int(k, value, 1), k)
        elif key == "timeout":
            layer._set("llm.timeout", layer._number(k, value, 0.0, open_low=True), k)
        elif key == "retries":
            layer._set("llm.retries", layer._int(k, value, 0), k)
        elif key == "retry_delay":
            layer._set("llm.backoff", layer._number(k, value, 0.0), k)
        elif value is not None:
            _leaf(layer, k, value)
    # OpenEvolve's primary (weight 1.0 unless given) and secondary (0.2; dropped at 0) models.
    for which, default in (("primary", 1.0), ("secondary", 0.2)):
        name, weight = named[f"{which}_model"], named[f"{which}_model_weight"]
        if name is None:
            if weight is not None:
                layer._unused(f"llm.{which}_model_weight", f"no llm.{which}_model")
            continue
        name = layer._str(f"llm.{which}_model", name)
        if weight is None or (which == "primary" and not weight):
            weight = default
        if layer._number(f"llm.{which}_model_weight", weight, 0.0) > 0:
            models.append({"name": name, "weight": float(weight)})
        else:
            layer._unused(f"llm.{which}_model", "weight 0: never picked")
    base_key = "llm.api_base"
    if models and base is None:  # the models' own endpoint, else OpenEvolve's default
        base_key, base = bases[0] if bases else (base_key, DEFAULT_API_BASE)
    if models:
        layer._set("llm.models", models, "llm.models")
        for where, other in bases:
            if other != base:
                layer._unused(where, f"evo calls one endpoint, {base}")
    if base is not None:
        layer._set("llm.base_url", base, base_key)
    if keys:
        where, var = keys[0]
        layer._set("llm.api_key_env", var, where)
        for other_where, other in keys[1:]:
            if other != var:
                layer._unused(other_where, f"evo reads one key, ${{{var}}}")


def _api_key(layer: OpenEvolveLayer, key: str, value: Any, keys: list[tuple[str, str]]) -> None:
    """``${VAR}`` names the variable; a key written out is never kept (not even in errors)."""
    if value is None or value == "":
        return
    m = _ENV_REF.match(value) if isinstance(value, str) else None
    if m is None:
        layer._unused(key, _LITERAL_KEY)
        return
    var = m.group(1).strip()
    if not var.replace("_", "").isalnum():
        raise ConfigError(
            f"{layer.path}: '{key}' must be ${{VARIABLE}}, an environment variable name"
        )
    keys.append((key, var))


def _model(
    layer: OpenEvolveLayer,
    where: str,
    item: Any,
    models: list[dict[str, Any]],
    bases: list[tuple[str, str]],
    keys: list[tuple[str, str]],
) -> None:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise layer._fail(where, "a model {name, weight}")
    weight = 1.0
    for key, value in item.items():
        k = f"{where}.{key}"
        if key == "weight":
            weight = layer._number(k, value, 0.0) if value is not None else 1.0
        elif key == "api_base":
            if value is not None:
                bases.append((k, layer._str(k, value)))
        elif key == "api_key":
            _api_key(layer, k, value, keys)
        elif key != "name" and value is not None:
            layer._unused(k)
    if weight > 0:
        models.append({"name": item["name"], "weight": weight})
    else:
        layer._unused(where, "weight 0: never picked")


def _map_evaluator(layer: OpenEvolveLayer, ev: dict[str, Any]) -> dict[str, Any]:
    """Map evaluator.*; return the cascade keys it gives (for :func:`_map_cascade`)."""
    cascade: dict[str, Any] = {}
    for key, value in ev.items():
        k = f"evaluator.{key}"
        if key == "timeout":
            layer._set("run.timeout", layer._number(k, value, 0.0, open_low=True), k)
        elif key == "cascade_evaluation":
            cascade[key] = layer._bool(k, value)
        elif key == "cascade_thresholds":
            ok = isinstance(value, list) and all(
                isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
                for t in value
            )
            if not ok:
                raise layer._fail(k, "a list of numbers, e.g. [0.5, 0.8]", value)
            cascade[key] = [float(t) for t in value]
        elif key == "parallel_evaluations":
            layer._set("backend.workers", layer._int(k, value, 1), k)
        elif key == "memory_limit_mb":
            if value is not None:
                layer._set("run.memory_mb", layer._int(k, value, 0), k)
        elif value is not None:
            _leaf(layer, k, value)
    return cascade


def _map_database(layer: OpenEvolveLayer, db: dict[str, Any], top_seed: Any) -> None:
    for key, value in db.items():
        k = f"database.{key}"
        if key == "random_seed" and value is not None:
            seed = layer._int(k, value, 0)
            if top_seed is None:  # OpenEvolve: the database's seed when the run names none
                layer._set("run.seed", seed, k)
            elif seed != top_seed:
                layer._unused(k, "evo has one seed, random_seed")
        elif value is not None:
            _leaf(layer, k, value)


def _map_cascade(layer: OpenEvolveLayer, given: dict[str, Any]) -> None:
    """The cascade OpenEvolve runs for this evaluator (see the module docstring)."""
    stages = openevolve_stages(layer.folder / "evaluator.py")
    on = given.get("cascade_evaluation", True)
    thresholds = given.get("cascade_thresholds", DEFAULT_THRESHOLDS)
    if not on:
        if "cascade_thresholds" in given:
            layer._unused("evaluator.cascade_thresholds", "cascade_evaluation is false")
        return
    if "stage1" not in stages:
        why = "evaluator.py defines no evaluate_stage1, so evaluate() is the one stage"
        for key in given:
            layer._unused(f"evaluator.{key}", why)
        if stages:
            names = ", ".join(f"evaluate_{s}" for s in stages)
            layer.notes.append(f"{names} never runs: a cascade starts at evaluate_stage1")
        return
    levels = ["stage1"]
    if "stage2" in stages:
        if not thresholds:
            raise ConfigError(
                f"{layer.path or layer.folder}: 'evaluator.cascade_thresholds' is empty; give "
                "one threshold per stage after the first, or set cascade_evaluation: false"
            )
        levels.append("stage2")
        if "stage3" in stages and len(thresholds) >= 2:
            levels.append("stage3")
        elif "stage3" in stages:
            layer.notes.append(
                "evaluate_stage3 never runs: evaluator.cascade_thresholds has one threshold "
                "(as in OpenEvolve)"
            )
    elif "stage3" in stages:
        layer.notes.append("evaluate_stage3 never runs without evaluate_stage2 (as in OpenEvolve)")
    source = "evaluator.cascade_evaluation"
    if len(levels) == 1:
        layer._set("run.fidelity", "stage1", source)
        layer.notes.append(
            "evaluate_stage1 is the only stage: it scores every program, as in OpenEvolve "
            "(cascade_evaluation: false scores them with evaluate)"
        )
        return
    layer._set("cascade.levels", levels, source)
    layer._set("cascade.promote", "threshold", source)
    layer._set("cascade.thresholds", thresholds[: len(levels) - 1], "evaluator.cascade_thresholds")


def find_layer(target: str, yaml_path: Path | None, *, auto: bool) -> OpenEvolveLayer | None:
    """The layer for run target ``target`` (a folder or a built-in name): ``yaml_path`` when
    given, else (``auto``) the folder's ``config.yaml`` when it has one; None when the target
    is not an OpenEvolve-layout folder (a ``yaml_path`` then is an error).
    """
    try:
        folder = resolve_target_path(target)
    except ConfigError:
        folder = None  # reported where the target is loaded
    if folder is None or not is_openevolve_folder(folder):
        if yaml_path is not None:
            if folder is None:
                why = f"{target} is not a folder"
            elif (folder / "target.toml").is_file():
                why = f"{folder} has a target.toml (evo's own layout)"
            else:
                missing = [
                    n for n in ("initial_program.py", "evaluator.py") if not (folder / n).is_file()
                ]
                why = f"{folder} has no {' and no '.join(missing)}"
            raise ConfigError(
                f"{yaml_path}: an OpenEvolve config needs an OpenEvolve-layout target folder "
                f"(initial_program.py and evaluator.py) and {why}; for a config.yaml kept "
                "elsewhere write a run.toml with run.target = the folder and "
                "run.openevolve_config = the YAML"
            )
        return None
    if yaml_path is None and auto and (folder / CONFIG_NAME).is_file():
        yaml_path = folder / CONFIG_NAME
    return openevolve_layer(folder, yaml_path.resolve() if yaml_path else None)


def notices(cfg: dict) -> list[str]:
    """The lines a run of resolved config ``cfg`` prints when it starts about its OpenEvolve
    folder and YAML: the keys evo does not use, and stages that never run."""
    path = cfg["run"].get("openevolve_config") or ""
    try:
        layer = find_layer(cfg["run"]["target"], Path(path) if path else None, auto=False)
    except ConfigError:
        return []
    if layer is None:
        return []
    lines = layer.notice_lines()
    url, var = cfg["llm"].get("base_url", ""), cfg["llm"].get("api_key_env", "")
    host = urlsplit(url).hostname or ""
    local = host in ("localhost", "::1") or host.startswith("127.")
    if url and var and not local and not os.environ.get(var):
        lines.append(
            f"llm: {var} is not set, so {url} will likely refuse every request; export it "
            "(llm.api_key_env names the variable), or run with --no-llm for the structural "
            "operators alone"
        )
    return lines
