"""Typer options derived from a command's Config dataclass (#16): each field is a flag whose name, type, default and
help (the field's ``# comment`` in the source) come from the field, so the CLI and the Python API cannot drift.

    @app.command()
    @config_command(DistillConfig, paths=("data", "out"))
    def distill(config: DistillConfig) -> None: ...

makes ``distilkit distill --alpha-kl 5`` call ``distill(DistillConfig(alpha_kl=5))``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from distilkit.cli.app import console, user_errors
from distilkit.errors import ConfigError

NOT_HELP = ("fmt:", "noqa", "type:")  # tool directives, not documentation


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


# ---------------------------------------------------------------- help: the fields' comments
@functools.cache
def _class_comments(cls: type) -> dict[str, str]:
    """field → its comment in ``cls``'s own source: the comment on the field's line(s), else the comment lines
    directly above it (no blank line between)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments: dict[int, tuple[str, bool]] = {}  # line → (text, whether the line holds only the comment)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if not text.startswith(NOT_HELP):
                comments[token.start[0]] = (text, not lines[token.start[0] - 1][: token.start[1]].strip())
    found = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        trailing = [comments[n][0] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        above, line = [], node.lineno - 1
        while line in comments and comments[line][1]:
            above.insert(0, comments[line][0])
            line -= 1
        found[node.target.id] = " ".join(trailing or above)
    return found


def field_help(config_class: type) -> dict[str, str]:
    """field → help text, for every field of ``config_class`` (inherited ones from their own class's source)."""
    found: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        if dataclasses.is_dataclass(cls):
            found.update(_class_comments(cls))
    return {field.name: found.get(field.name, "") for field in dataclasses.fields(config_class)}


# ---------------------------------------------------------------- types: field type → CLI type and back
def _number_or_text(default: Any) -> Callable[[Any], Any]:
    """A ``float | str`` field (a loss weight: a number or a schedule's text, train/schedule.py) gets the text as
    typed (``--alpha-kl 3`` is recorded as "3", a schedule as its text) and the dataclass default when not given."""
    return lambda value: default if value == _shown(default) else value


def _shown(default: Any) -> Any:
    return None if default is None or default is ... else str(default)


def _items(flag: str, element: type, is_path: bool) -> Callable[[Any], tuple]:
    """A repeatable flag's values → the field's tuple; values that are not paths may also be comma-separated."""

    def convert(values: list | None) -> tuple:
        parts = [str(v) for v in values or ()]
        if not is_path:
            parts = [part.strip() for value in parts for part in value.split(",") if part.strip()]
        try:
            return tuple(element(part) for part in parts)
        except ValueError:
            kind = {int: "integers", float: "numbers"}.get(element, element.__name__)
            raise ConfigError(f"{flag} must be comma-separated {kind} — got '{','.join(parts)}'") from None

    return convert


def _same(value: Any) -> Any:
    return value


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def cli_type(field: dataclasses.Field, hint: Any, is_path: bool) -> tuple[Any, Any, Callable[[Any], Any]]:
    """(CLI annotation, CLI default, converter to the config value) of one field."""
    if field.default is not dataclasses.MISSING:
        default = field.default
    else:
        default = ... if field.default_factory is dataclasses.MISSING else field.default_factory()
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
    if optional and default is ...:  # `X | None` without a default (distill's --data, or --parallel instead): the
        default = None  # flag may be left out, and the config's own check says what is missing in one line
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if set(args) == {float, str}:  # a number or a schedule (train/config.py Scheduled)
            shown = ... if default is ... else _shown(default)
            return (str | None) if optional else str, shown, _number_or_text(default)
        hint = args[0] if len(args) == 1 else str
    if typing.get_origin(hint) in (tuple, list):
        element = typing.get_args(hint)[0]
        cli_element = Path if is_path else str
        if default is not ...:
            default = [str(value) for value in default] or None
        return list[cli_element] | None, default, _items(flag_name(field.name), element, is_path)
    if is_path or hint is str:
        cli = Path if is_path else str
        return (cli | None) if optional else cli, default, _text
    return (hint | None) if optional else hint, default, _same


# ---------------------------------------------------------------- the command
def config_parameters(config_class: type, paths: Iterable[str] = ()) -> list[tuple[inspect.Parameter, Callable]]:
    """One keyword parameter per field of ``config_class`` (required fields first, each class's own fields before
    the ones it inherits), with its converter to the config's value."""
    paths, hints, helps = set(paths), typing.get_type_hints(config_class), field_help(config_class)
    owner = {}  # field → how far down the class hierarchy it is declared (a redeclaration counts)
    for depth, cls in enumerate(reversed(config_class.__mro__)):
        owner.update(dict.fromkeys(vars(cls).get("__annotations__", {}), depth))
    fields = dataclasses.fields(config_class)
    ordered = sorted(fields, key=lambda f: (not _required(f), -owner.get(f.name, 0), fields.index(f)))
    parameters = []
    for field in ordered:
        annotation, default, convert = cli_type(field, hints[field.name], field.name in paths)
        option = typer.Option(
            help=escape(helps[field.name]),
            show_default=default is not None,
            metavar=_metavar(hints[field.name], field.name in paths),
        )
        parameter = inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[annotation, option],
            default=inspect.Parameter.empty if default is ... else default,
        )
        parameters.append((parameter, convert))
    return parameters


def _metavar(hint: Any, is_path: bool) -> str | None:
    """A repeatable flag's metavar: ``<path>...`` (repeat the flag) or ``<int,...>`` (repeat it or use commas)."""
    if typing.get_origin(hint) not in (tuple, list):
        return None
    return "<path>..." if is_path else f"<{typing.get_args(hint)[0].__name__},...>"


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def config_command(
    config_class: type,
    paths: Iterable[str] = (),
    aliases: dict[str, str] | None = None,
    build: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``function(config, **extra)`` into a typer command whose flags are ``config_class``'s fields.

    paths: fields whose flag takes a path (shown as such; the config still gets a string). aliases: hidden,
    deprecated flag → the field it sets (a one-line note when used). build: False passes the dict of field
    values instead of the config (a command that picks its config from the flags). The function's own parameters
    after ``config`` stay flags or arguments of their own (not config fields)."""
    aliases = aliases or {}

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        derived = config_parameters(config_class, paths)
        convert = {parameter.name: converter for parameter, converter in derived}
        extra = list(inspect.signature(function, eval_str=True).parameters.values())[1:]
        by_name = {parameter.name: parameter for parameter, _ in derived}
        alias_parameters = []
        for alias, target in aliases.items():  # the target's type, hidden, no default of its own
            cli = typing.get_args(by_name[target].annotation)[0]
            option = typer.Option(hidden=True, help=f"Deprecated: {flag_name(target)}.")
            alias_parameters.append(inspect.Parameter(
                alias, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[cli | None, option]
            ))  # fmt: skip

        @functools.wraps(function)
        def command(**flags: Any) -> Any:
            for alias, target in aliases.items():
                value = flags.pop(alias)
                if value is not None:
                    note = f"note: {flag_name(alias)} is deprecated — it is {flag_name(target)}"
                    console.print(note, highlight=False)
                    flags[target] = value
            extras = {parameter.name: flags.pop(parameter.name) for parameter in extra}
            with user_errors():
                values = {name: convert[name](value) for name, value in flags.items()}
                config = config_class(**values) if build else values
            return function(config, **extras)

        del command.__wrapped__  # typer reads __signature__, not the decorated function's parameters
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in extra]
        command.__signature__ = inspect.Signature([*(p for p, _ in derived), *keyword, *alias_parameters])
        command.__annotations__ = {}  # the signature's annotations are the ones typer reads
        command.config_class = config_class
        return command

    return decorate
