"""Recipes: validation errors that name file, key, expectation and finding."""

from __future__ import annotations

import textwrap
import tomllib

import pytest

import ft
from ft.recipe import apply_overrides, parse_override

GOOD = """
[task]
type = "classification"

[data]
format = "toy_blobs"
n_classes = 4

[backbone]
name = "toy_mlp"

[train]
epochs = 2
"""


def write(tmp_path, text, name="r.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_are_filled_in(registry, tmp_path):
    recipe = ft.load_recipe(write(tmp_path, GOOD))
    resolved = recipe.to_dict()
    assert resolved["head"]["type"] == "linear"
    assert resolved["freeze"]["strategy"] == "full"
    assert resolved["optim"]["lr"] == 1e-3
    assert resolved["data"]["n_classes"] == 4
    assert resolved["data"]["n_train"] == 240  # the plugin's default
    assert tomllib.loads(recipe.to_toml()) == resolved


@pytest.mark.parametrize("override,expected", [
    ("train.epochs=3", ("train.epochs", 3)),
    ("optim.lr=3e-4", ("optim.lr", 3e-4)),
    ("train.compile=true", ("train.compile", True)),
    ("head.hidden=[64, 32]", ("head.hidden", [64, 32])),
    ("output.dir=runs/x", ("output.dir", "runs/x")),
    ('backbone.name="toy_mlp"', ("backbone.name", "toy_mlp")),
])
def test_override_type_coercion(override, expected):
    assert parse_override(override) == expected


def test_overrides_apply_and_validate(registry, tmp_path):
    recipe = ft.load_recipe(write(tmp_path, GOOD), ["train.epochs=5", "data.n_classes=3", "head.type=mlp"])
    assert recipe.train.epochs == 5
    assert recipe.data.options.n_classes == 3
    assert recipe.head.name == "mlp"
    with pytest.raises(ft.RecipeError, match=r"train\.epochs \(from --set\): .*greater than or equal to 1; found 0"):
        ft.load_recipe(write(tmp_path, GOOD), ["train.epochs=0"])


def test_override_into_a_value_is_an_error():
    with pytest.raises(ft.RecipeError, match="'train.epochs' is a value"):
        apply_overrides({"train": {"epochs": 1}}, {"train.epochs.x": 2})
    with pytest.raises(ft.RecipeError, match="write --set section.key=value"):
        parse_override("train.epochs")


def test_unknown_key_gets_did_you_mean(registry, tmp_path):
    path = write(tmp_path, GOOD.replace("epochs = 2", "epoch = 2"))
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(path)
    text = str(err.value)
    assert str(path) in text and "train.epoch: unknown key" in text and "did you mean 'epochs'" in text


def test_unknown_plugin_option_names_the_plugin(registry, tmp_path):
    path = write(tmp_path, GOOD.replace("n_classes = 4", "n_clases = 4"))
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(path)
    assert "data.n_clases: unknown key for data 'toy_blobs' (plugin toy)" in str(err.value)
    assert "did you mean 'n_classes'" in str(err.value)


def test_wrong_type_says_expected_and_found(registry, tmp_path):
    path = write(tmp_path, GOOD.replace("epochs = 2", 'epochs = "many"'))
    with pytest.raises(ft.RecipeError, match=r"train\.epochs: Input should be a valid integer.*found 'many'"):
        ft.load_recipe(path)


def test_unknown_names_are_caught_before_training(registry, tmp_path):
    text = GOOD.replace('name = "toy_mlp"', 'name = "toy_mpl"') + '\n[freeze]\nstrategy = "linear_prob"\n'
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(write(tmp_path, text))
    msg = str(err.value)
    assert "backbone.name: unknown backbone 'toy_mpl'" in msg and "did you mean 'toy_mlp'" in msg
    assert "freeze.strategy: unknown freeze strategy 'linear_prob'" in msg and "did you mean 'linear_probe'" in msg


def test_missing_data_path_is_caught(registry, tmp_path):
    path = write(tmp_path, GOOD.replace("n_classes = 4", 'csv = "nope/data.csv"'))
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(path)
    assert "data.csv" in str(err.value) and "path does not exist" in str(err.value)
    assert str(tmp_path / "nope" / "data.csv") in str(err.value)  # resolved against the recipe's folder


def test_relative_paths_resolve_against_the_recipe(registry, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.csv").write_text("1,2,3,4,5,6,7,8,0\n")
    recipe = ft.load_recipe(write(tmp_path, GOOD.replace("n_classes = 4", 'csv = "d/x.csv"')))
    assert recipe.data.options.csv == tmp_path / "d" / "x.csv"


def test_unknown_section_and_bad_toml(registry, tmp_path):
    with pytest.raises(ft.RecipeError, match=r"trian: unknown section.*did you mean 'train'"):
        ft.load_recipe(write(tmp_path, GOOD + "\n[trian]\nepochs = 1\n"))
    with pytest.raises(ft.RecipeError, match="not valid TOML"):
        ft.load_recipe(write(tmp_path, "[train\nepochs = 1"))
    with pytest.raises(ft.RecipeError, match="recipe file not found"):
        ft.load_recipe(tmp_path / "missing.toml")


def test_plugin_section_is_validated_by_its_plugin(registry, tmp_path):
    recipe = ft.load_recipe(write(tmp_path, GOOD + '\n[recorder]\ntag = "x"\n'))
    assert recipe.sections["recorder"].tag == "x"
    with pytest.raises(ft.RecipeError, match=r"recorder\.tga: unknown key"):
        ft.load_recipe(write(tmp_path, GOOD + '\n[recorder]\ntga = "x"\n'))


def test_task_type_must_be_supported(registry, tmp_path):
    with pytest.raises(ft.RecipeError, match="does not support task.type 'multilabel'"):
        ft.load_recipe(write(tmp_path, GOOD.replace('"classification"', '"multilabel"')))


def test_all_errors_reported_at_once(registry, tmp_path):
    text = GOOD.replace("epochs = 2", "epochs = -1\nbatch_sise = 3")
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(write(tmp_path, text))
    assert "train.epochs" in str(err.value) and "train.batch_sise" in str(err.value)


# -- recipe files that are not UTF-8 TOML text ------------------------------------------


def test_recipe_that_is_not_a_text_file(registry, tmp_path):
    (tmp_path / "recipes").mkdir()
    write(tmp_path / "recipes", GOOD, name="toy.toml")
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(tmp_path / "recipes")
    assert "recipes: this is a folder, not a recipe file" in str(err.value) and "toy.toml" in str(err.value)
    binary = tmp_path / "model.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ft.RecipeError, match="model.toml: this is a binary file, not a TOML recipe"):
        ft.load_recipe(binary)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(textwrap.dedent(GOOD).replace("[train]", "# réglages\n[train]").encode("latin-1"))
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(latin1)
    text = str(err.value)
    assert f"{latin1}: line 12: the recipe is not UTF-8 text: byte 0xe9" in text and "iconv -f latin1" in text
    utf16 = tmp_path / "utf16.toml"
    utf16.write_text(textwrap.dedent(GOOD), encoding="utf-16")
    with pytest.raises(ft.RecipeError, match="UTF-16"):
        ft.load_recipe(utf16)
    bom = tmp_path / "bom.toml"
    bom.write_text(textwrap.dedent(GOOD), encoding="utf-8-sig")  # a byte-order mark is harmless
    assert ft.load_recipe(bom).train.epochs == 2


# -- overrides are blamed, not the file -----------------------------------------------


def test_errors_from_an_override_name_the_override(registry, tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(path, ["train.epochs.x.y=1"])
    assert str(err.value).startswith("--set train.epochs.x.y=1: cannot set 'train.epochs.x.y': 'train.epochs' is a "
                                     "value (2), not a table")
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(path, ["a.b.c.d=1", "train.foo.bar=1"])
    text = str(err.value)
    assert "a (from --set): unknown section (given as --set a.b.c.d=1)" in text
    assert "train.foo (from --set): unknown key (given as --set train.foo.bar=1)" in text
    with pytest.raises(ft.RecipeError, match=r"train\.foo \(from override\): unknown key \(given as override "
                                             r"train\.foo\.bar=1\)"):
        ft.load_recipe(path, {"train.foo.bar": 1})  # the Python API's overrides
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(write(tmp_path, GOOD.replace("epochs = 2", "epochs = 2\nfoo = 1"), name="f.toml"))
    assert "train.foo: unknown key" in str(err.value) and "--set" not in str(err.value)  # the file's own mistake


# -- train.device ----------------------------------------------------------------------


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_device_forms_that_validate(registry, tmp_path, device):
    assert ft.load_recipe(write(tmp_path, GOOD), [f'train.device="{device}"']).train.device == device


@pytest.mark.parametrize("device", ["tpu9", "cuda:x", "gpu", "CUDA", "cuda:", "cpu:0"])
def test_device_forms_that_do_not(registry, tmp_path, device):
    path = write(tmp_path, GOOD.replace("epochs = 2", f'epochs = 2\ndevice = "{device}"'))
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(path)
    expected = f"train.device: {device!r} is not a device; expected one of auto | cpu | cuda | cuda:N | mps"
    assert expected in str(err.value)


class _Logger:
    def __init__(self, options, ctx):
        self.options, self.started = options, False

    def ft_run_start(self, run):
        self.started = True


class _LoggerOptions(ft.Options):
    project: str = "default"


class _LoggerPlugin:
    built: list = []

    @ft.hookimpl
    def ft_loggers(self):
        def build(options, ctx):
            logger = _Logger(options, ctx)
            self.built.append(logger)
            return logger
        return [ft.LoggerSpec("notebook", build, _LoggerOptions)]


def test_log_section_names_loggers_and_validates_their_options(registry, make_recipe):
    registry.register(_LoggerPlugin(), "notebook-logger")
    recipe = ft.load_recipe(make_recipe(log={"backends": ["notebook"], "notebook": {"project": "p"}}))
    assert recipe.log.backends == ["notebook"] and recipe.log.loggers["notebook"].options.project == "p"
    assert recipe.to_dict()["log"] == {"backends": ["notebook"], "notebook": {"project": "p"}}
    # a table for a logger not turned on is kept; --log turns it on
    quiet = ft.load_recipe(make_recipe(log={"notebook": {"project": "q"}}))
    assert quiet.log.backends == [] and quiet.log.loggers["notebook"].options.project == "q"
    loud = ft.load_recipe(make_recipe(log={"notebook": {"project": "q"}}), loggers=["notebook"])
    assert loud.log.backends == ["notebook"] and loud.log.loggers["notebook"].options.project == "q"


@pytest.mark.parametrize("log, message", [
    ({"backends": ["notebok"]}, "log.backends: unknown logger 'notebok' — did you mean 'notebook'"),
    ({"backends": "notebook"}, "log.backends: expected a list of logger names"),
    ({"notebook": {"projet": "x"}}, "log.notebook.projet: unknown key for logger 'notebook'"),
    ({"every": 3}, "log.every: unknown key"),
])
def test_log_section_errors_name_the_key(registry, make_recipe, log, message):
    registry.register(_LoggerPlugin(), "notebook-logger")
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(make_recipe(log=log))
    assert message in str(err.value)


def test_a_run_builds_its_loggers_and_fires_events_to_them(registry, make_recipe):
    plugin = _LoggerPlugin()
    plugin.built.clear()
    registry.register(plugin, "notebook-logger")
    result = ft.run(make_recipe(train={"epochs": 1}), loggers=["notebook"], quiet=True, test=False)
    assert [lg.started for lg in plugin.built] == [True]
    assert set(result.metrics) == {"val"}  # test=False: the test split is not scored
