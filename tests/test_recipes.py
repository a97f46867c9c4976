"""Pinned recipes: every file in recipes/ loads and builds its config; --set overrides; one-line errors; a run."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from distilkit.cli import app
from distilkit.errors import ConfigError
from distilkit.recipes import load_recipe
from tiny import make_model, write_token_data

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.toml"))


@pytest.fixture
def fake_inputs(tmp_path, monkeypatch):
    """The placeholders pointed at an empty folder; `make(recipe)` creates the paths its config names (files for
    names with a suffix, folders otherwise), so that configs that check their inputs exist can be built."""
    monkeypatch.setenv("DISTILKIT_SHARED_DATA", str(tmp_path / "shared"))
    monkeypatch.setenv("DISTILKIT_RUNS", str(tmp_path / "runs"))

    def make(recipe) -> None:
        for value in recipe.settings.values():
            for path in value if isinstance(value, tuple) else (value,):
                if isinstance(path, str) and path.startswith(str(tmp_path)):
                    target = Path(path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.suffix:
                        target.write_text("a line of text\n")
                    else:
                        target.mkdir(exist_ok=True)

    return make


def test_there_are_recipes():
    assert len(RECIPES) >= 10


@pytest.mark.parametrize("path", RECIPES, ids=[path.stem for path in RECIPES])
def test_every_recipe_loads_and_builds_its_config(path, fake_inputs, tmp_path):
    recipe = load_recipe(path)
    fake_inputs(recipe)
    config = recipe.config()
    assert isinstance(config, recipe.config_class())
    # Placeholders expanded at load time: no "${" is left, the data and runs land where the environment says.
    assert not any("${" in str(value) for value in recipe.settings.values())
    assert str(config.out).startswith(str(tmp_path / "runs"))
    measured = recipe.measured
    assert (REPO / measured["results"]).is_file(), measured["results"]
    assert "not yet measured" in measured["figure"] or any(c.isdigit() for c in measured["figure"])
    assert measured["command"].startswith("python benchmarks/")


def test_shared_data_defaults_to_the_benchmarks_folder(monkeypatch):
    monkeypatch.delenv("DISTILKIT_SHARED_DATA", raising=False)
    recipe = load_recipe(REPO / "recipes" / "glue-rte-teacher.toml")
    assert recipe.settings["data"] == "../shared/data/glue/RTE"


def test_overrides_are_parsed_to_the_fields_types():
    recipe = load_recipe(
        REPO / "recipes" / "embedding-student-3-layers.toml",
        ["lr=3e-4", "max_steps=none", "tensorboard=true", "alpha_kl=cosine:5:1", "alpha_cos=0.5", "seed=7"],
    )
    settings = recipe.settings
    assert settings["lr"] == 3e-4 and settings["max_steps"] is None and settings["tensorboard"] is True
    assert settings["alpha_kl"] == "cosine:5:1" and settings["alpha_cos"] == 0.5 and settings["seed"] == 7
    assert settings["batch_size"] == 32  # untouched fields keep the recipe's value
    config = recipe.config()
    assert config.lr == 3e-4 and config.seed == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["nope=1"], "recipe embedding-student-3-layers: --set nope is not a field of distill's config"),
        (["lr=fast"], "recipe embedding-student-3-layers: --set lr must be a number, got 'fast'"),
        (["seed"], "recipe embedding-student-3-layers: --set takes key=value, got 'seed'"),
        (["batch_size=0"], "recipe embedding-student-3-layers: --batch-size must be ≥ 1"),
    ],
)
def test_bad_overrides_are_one_line(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_recipe(REPO / "recipes" / "embedding-student-3-layers.toml", overrides).config()
    assert str(error.value) == message


GOOD = """command = "distill"
[config]
teacher = "t"
student = "s"
data = "d"
out = "o"
[measured]
figure = "1.0"
results = "benchmarks/results/tasks.md"
command = "python benchmarks/tasks.py"
hardware = "a CPU"
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('"distill"', '"distil"'), "unknown command 'distil' — one of prepare, init-student, distill"),
        (("[config]", "seeds = 3\n[config]"), "unknown key 'seeds' — a recipe holds command, config"),
        (('out = "o"', 'out = "o"\nlayers = 3'), "config.layers is not a field of distill's config"),
        (('out = "o"', 'out = "o"\nlr = "fast"'), "config.lr must be a number, got 'fast'"),
        (('out = "o"', 'out = "o"\nmax_steps = 2.5'), "config.max_steps must be an integer or none, got 2.5"),
        (('out = "o"', 'out = "${NOT_SET_ANYWHERE}/o"'), "config.out uses ${NOT_SET_ANYWHERE}, which is not set"),
        (('hardware = "a CPU"\n', ""), "[measured] lacks hardware"),
        (('"benchmarks/results/tasks.md"', '"tasks.md"'), "measured.results must name a file in benchmarks/results/"),
        (('figure = "1.0"', 'figure = "1.0"\nrange = [2, 1]'), "measured.range must be [low, high], got [2, 1]"),
        (('data = "d"\n', ""), "recipe bad: [config] lacks data"),
        (("[config]", "[config"), "recipe bad: not valid TOML"),
    ],
)
def test_bad_recipes_are_one_line(tmp_path, change, message):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError) as error:
        load_recipe(path).config()
    text = str(error.value)
    assert text.startswith("recipe bad: ") and message in text and "\n" not in text


def test_distilkit_run_of_a_tiny_recipe(tmp_path, monkeypatch):
    make_model(tmp_path / "teacher", mlm=False, layers=2)
    write_token_data(tmp_path / "data", n_sequences=48)
    monkeypatch.setenv("TINY", str(tmp_path))
    recipe = tmp_path / "tiny-head.toml"
    recipe.write_text(
        GOOD.replace('"distill"', '"fit-mlm-head"').replace('student = "s"\n', "")
        .replace('"t"', '"${TINY}/teacher"').replace('"d"', '"${TINY}/data"').replace('"o"', '"${TINY}/out"')
    )  # fmt: skip
    result = CliRunner().invoke(app, ["run", str(recipe), "--set", "max_steps=3", "--set", "batch_size=8"])
    assert result.exit_code == 0, result.output
    assert "recipe tiny-head: distilkit fit-mlm-head; measured 1.0" in result.output
    assert (tmp_path / "out" / "distilkit_mlm_head.json").is_file()
    assert (tmp_path / "out" / "config.json").is_file()
    bad = CliRunner().invoke(app, ["run", str(recipe), "--set", "max_stepz=3"])
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert bad.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: recipe tiny-head: --set max_stepz")
