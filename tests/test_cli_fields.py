"""The CLI derived from the configs (#16, cli/fields.py): each field's flag, type, default and help come from the
dataclass, so `distilkit CMD --field-name X` ≡ `CMD(Config(field_name=X))`."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

import distilkit.cli  # noqa: F401 (registers the commands)
from distilkit.cli.app import app
from distilkit.cli.fields import config_command, field_help
from distilkit.errors import ConfigError
from test_cli_reach import COMMANDS

Scheduled = float | str


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    name: str  # the toy's name
    out: str  # where it goes
    # how many, said
    # on two lines
    count: int = 3
    ratio: float = 0.5  # a share
    loud: bool = True  # shout [bold]literally[/]
    limit: int | None = None  # at most this many; None: no limit
    sizes: tuple[int, ...] = (1, 32)  # batch sizes
    files: tuple[str, ...] = ()  # input files, never split on commas
    weight: Scheduled = 5.0  # a number or a schedule
    label: str = "x"  # fmt: skip

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ConfigError("--count must be ≥ 0")


def toy_app(seen: list, **options) -> typer.Typer:
    toy = typer.Typer()

    @toy.command()
    @config_command(ToyConfig, paths=("out", "files"), **options)
    def run(config: ToyConfig) -> None:
        """Run the toy."""
        seen.append(config)

    @toy.command()
    def other() -> None:  # a second command keeps `run` a subcommand
        pass

    return toy


def cli_type(flag) -> type:
    return flag.type_descriptor.annotation


def params(typer_app: typer.Typer, command: str) -> dict:
    return {param.name: param for param in get_command(typer_app).commands[command].params}


def test_each_kind_of_field_becomes_its_flag():
    flags = params(toy_app([]), "run")
    assert list(flags)[:2] == ["name", "out"]  # required fields first
    assert flags["name"].required and flags["name"].opts == ["--name"] and cli_type(flags["name"]) is str
    assert cli_type(flags["out"]) is Path  # a path flag; the config still gets a string
    assert flags["count"].default == 3 and cli_type(flags["count"]) is int
    assert flags["ratio"].default == 0.5 and cli_type(flags["ratio"]) is float
    assert flags["loud"].opts == ["--loud"] and flags["loud"].secondary_opts == ["--no-loud"]
    assert flags["loud"].default is True
    assert flags["limit"].default is None and not flags["limit"].required
    assert flags["sizes"].multiple and flags["sizes"].default == ["1", "32"]
    assert flags["files"].multiple and flags["files"].default is None
    assert flags["weight"].default == "5.0" and cli_type(flags["weight"]) is str  # a number or a schedule


def test_help_is_the_field_comment():
    helps = field_help(ToyConfig)
    assert helps["name"] == "the toy's name"
    assert helps["count"] == "how many, said on two lines"  # the comment block above a field without one
    assert helps["limit"] == "at most this many; None: no limit"
    assert helps["label"] == ""  # tool directives are not help
    flags = params(toy_app([]), "run")
    assert flags["ratio"].help == "a share"
    assert flags["loud"].help == r"shout \[bold]literally\[/]"  # rich markup escaped: printed as written
    result = CliRunner().invoke(toy_app([]), ["run", "--help"], env={"COLUMNS": "200"})
    assert "shout [bold]literally[/]" in result.output and "Run the toy." in result.output


def test_flags_build_the_config():
    seen: list = []
    args = ["run", "--name", "n", "--out", "o/", "--no-loud", "--limit", "7", "--sizes", "1,8", "--sizes", "64",
            "--files", "a,b.txt", "--files", "c.txt", "--weight", "2", "--ratio", "0.25"]  # fmt: skip
    result = CliRunner().invoke(toy_app(seen), args)
    assert result.exit_code == 0, result.output
    expected = ToyConfig(name="n", out="o", loud=False, limit=7, sizes=(1, 8, 64), files=("a,b.txt", "c.txt"),
                         weight="2", ratio=0.25)  # fmt: skip
    assert seen == [expected]
    assert (
        CliRunner().invoke(toy_app(seen), ["run", "--name", "n", "--out", "o", "--weight", "cosine:4:1"]).exit_code == 0
    )
    assert seen[-1] == ToyConfig(name="n", out="o", weight="cosine:4:1")  # a schedule stays text
    CliRunner().invoke(toy_app(seen), ["run", "--name", "n", "--out", "o"])
    assert seen[-1] == ToyConfig(name="n", out="o")  # no flags: the dataclass defaults
    assert isinstance(seen[-1].weight, float)  # the default itself, not its text


@pytest.mark.parametrize(
    "args, fragment",
    [(["--count", "-1"], "--count must be ≥ 0"), (["--sizes", "1,a"], "--sizes must be comma-separated integers")],
)
def test_config_errors_are_one_line_exit_2(args, fragment):
    result = CliRunner().invoke(toy_app([]), ["run", "--name", "n", "--out", "o", *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.output


def test_a_deprecated_alias_sets_its_field_with_a_note():
    seen: list = []
    toy = toy_app(seen, aliases={"old_ratio": "ratio"})
    assert params(toy, "run")["old_ratio"].hidden
    result = CliRunner().invoke(toy, ["run", "--name", "n", "--out", "o", "--old-ratio", "0.75"])
    assert result.exit_code == 0 and seen[-1].ratio == 0.75
    assert "note: --old-ratio is deprecated — it is --ratio" in result.output


# ---------------------------------------------------------------- the real commands
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_flag_has_its_field_default_and_comment(name):
    config_class, flags = COMMANDS[name], params(app, name)
    helps = field_help(config_class)
    for field in dataclasses.fields(config_class):
        flag = flags[field.name]
        assert helps[field.name], f"{name}: field {field.name} has no comment to be its --help"
        assert flag.help.replace("\\[", "[") == helps[field.name]
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            optional = type(None) in typing.get_args(typing.get_type_hints(config_class)[field.name])
            # `X | None` without a default (distill's --data: or --parallel) may be left out; the config says why
            assert flag.required != optional and (flag.default is None or not optional), f"{name} --{field.name}"
            continue
        default = field.default
        if isinstance(default, tuple):
            default = [str(value) for value in default] or None
        elif isinstance(default, float) and cli_type(flag) is str:  # a loss weight: number or schedule
            default = str(default)
        assert flag.default == default, f"{name} --{field.name}: {flag.default!r} ≠ {field.default!r}"


def test_distill_flags_are_distill_config(tmp_path, monkeypatch):
    """`distilkit distill --alpha-kl 5 ...` calls distill(DistillConfig(alpha_kl=5, ...)); --alpha-ce is its alias."""
    from distilkit.train import distill as distill_module
    from distilkit.train.config import DistillConfig

    seen = []
    monkeypatch.setattr(distill_module, "distill", lambda config, callback=None: seen.append(config) or _Result())
    base = ["distill", "--teacher", "t", "--student", "s", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*base, "--alpha-kl", "3", "--no-tensorboard", "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    # A loss weight is passed as typed: the library reads numbers and schedules alike and records the text.
    assert seen[-1] == DistillConfig("t", "s", str(tmp_path), str(tmp_path / "o"), alpha_kl="3", tensorboard=False,
                                     max_steps=4)  # fmt: skip
    assert seen[-1].alpha_mlm == DistillConfig.alpha_mlm == 2.0  # flags not given: the dataclass defaults
    result = CliRunner().invoke(app, [*base, "--alpha-ce", "cosine:5:1"])
    assert result.exit_code == 0 and seen[-1].alpha_kl == "cosine:5:1"
    assert "--alpha-ce is deprecated" in result.output


class _Result:
    steps, skipped_steps, terms, student_dir = 1, 0, ("kl",), "s"
