"""Provenance: a run records the plugin, distribution and version behind
every component it used (env.json, MODEL_CARD.md); loading the run without
that plugin names what to install; plugin code that raises while building
is named with its distribution, version and step; ``ft.specs.require``
names the plugin's own distribution."""

from __future__ import annotations

import json
import textwrap
from importlib.metadata import version

import pytest

import ft
from ft import _registry
from ft.cli import main
from ft.specs import BackboneSpec, DatasetFormatSpec, require

import toy_plugin
from toy_plugin import write_recipe

SMALL = {"n_train": 48, "n_val": 16, "n_test": 16}
FTKIT = version("ftkit")


@pytest.fixture
def versioned(monkeypatch):
    """A fresh registry holding the toy plugin as if installed as distribution ftkit-toy 0.0.1."""
    _registry.reset_registry()
    reg = _registry.get_registry()
    reg.register(toy_plugin, "toy", distribution="ftkit-toy", version="0.0.1")
    yield reg
    _registry.reset_registry()


def without_plugins() -> None:
    """This process from now on: the installed plugins only (the toy one is gone)."""
    _registry.reset_registry()
    _registry.get_registry()


def test_env_json_and_model_card_name_every_component(versioned, make_recipe):
    result = ft.run(make_recipe(data=SMALL, train={"epochs": 1}, recorder={"tag": "x"}), quiet=True)
    env = json.loads((result.run_dir / "env.json").read_text())
    toy = {"plugin": "toy", "distribution": "ftkit-toy", "version": "0.0.1"}
    builtin = {"distribution": "ftkit", "version": FTKIT}
    assert env["components"] == [
        {"kind": "backbone", "name": "toy_mlp", **toy},
        {"kind": "dataset format", "name": "toy_blobs", **toy},
        {"kind": "head", "name": "linear", "plugin": "heads", **builtin},
        {"kind": "freeze strategy", "name": "full", "plugin": "freeze", **builtin},
        {"kind": "recipe section", "name": "recorder", **toy},
    ]
    assert result.summary["components"] == env["components"]
    card = (result.run_dir / "MODEL_CARD.md").read_text()
    assert "| backbone | `toy_mlp` | toy | ftkit-toy | 0.0.1 |" in card
    assert "| dataset format | `toy_blobs` | toy | ftkit-toy | 0.0.1 |" in card
    assert f"| head | `linear` | heads | ftkit | {FTKIT} |" in card
    assert f"| freeze strategy | `full` | freeze | ftkit | {FTKIT} |" in card
    assert "| recipe section | `recorder` | toy | ftkit-toy | 0.0.1 |" in card


def test_using_a_run_whose_plugin_is_gone_names_the_distribution(versioned, make_recipe, tmp_path, capsys):
    run_dir = ft.run(make_recipe(data=SMALL, train={"epochs": 1}), quiet=True).run_dir
    exported = ft.export_run(run_dir, tmp_path / "exported")  # an export keeps the record
    without_plugins()
    for command in (["eval", str(run_dir)], ["predict", str(run_dir), "1,2,3,4,5,6,7,8"],
                    ["export", str(run_dir), str(tmp_path / "again")], ["eval", str(exported)]):
        capsys.readouterr()
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert ("this run used backbone 'toy_mlp' from plugin toy, which is not installed "
                "(distribution ftkit-toy version 0.0.1)") in err, err
        assert "pip install 'ftkit-toy==0.0.1'" in err
    with pytest.raises(ft.PluginError, match="ftkit-toy"):
        ft.load_run(run_dir)


def test_a_run_of_an_in_process_plugin_says_register_it_again(registry, make_recipe, capsys):
    run_dir = ft.run(make_recipe(data=SMALL, train={"epochs": 1}), quiet=True).run_dir
    without_plugins()
    assert main(["eval", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "plugin toy, which was registered in the process that trained it (ft.register_plugin)" in err
    assert "register it again in the same way before loading the run" in err and "pip install" not in err
    ft.register_plugin(toy_plugin, "toy")  # registered again: the run loads
    assert set(ft.evaluate_run(run_dir)) >= {"loss", "accuracy"}


class Exploding:
    """A plugin whose backbone's build raises a plain ValueError."""

    @ft.hookimpl
    def ft_backbones(self):
        def build(options, ctx):
            raise ValueError("no weights in /models/exploding")

        return [BackboneSpec("exploding", build)]

    @ft.hookimpl
    def ft_dataset_formats(self):
        def build(options, backbone, ctx):
            raise KeyError("label")

        return [DatasetFormatSpec("broken_rows", build)]


def test_a_plugin_whose_build_raises_is_named_with_distribution_version_and_step(registry, tmp_path, capsys):
    registry.register(Exploding(), "boom", distribution="ftkit-boom", version="2.1")
    recipe = toy_plugin.toy_recipe(tmp_path, backbone={"name": "exploding"}, data=SMALL)
    path = write_recipe(tmp_path / "boom.toml", recipe)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert ("plugin boom (distribution ftkit-boom version 2.1) failed in building the backbone "
            "(backbone 'exploding'): ValueError: no weights in /models/exploding") in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
    with pytest.raises(ft.PluginError) as debug:  # --debug: the plugin's own traceback, as the cause
        main(["--debug", "run", str(path)])
    assert isinstance(debug.value.__cause__, ValueError)

    recipe = toy_plugin.toy_recipe(tmp_path, data={"format": "broken_rows"})
    path = write_recipe(tmp_path / "rows.toml", recipe)
    assert main(["run", str(path)]) == 2
    assert ("plugin boom (distribution ftkit-boom version 2.1) failed in reading the data "
            "(dataset format 'broken_rows'): KeyError: 'label'") in capsys.readouterr().err


def test_an_ft_error_from_a_plugin_passes_through_unchanged(registry, make_recipe):
    class Careful:
        @ft.hookimpl
        def ft_backbones(self):
            def build(options, ctx):
                raise ft.FtError("weights folder is empty", where="/models/careful", hint="download them")

            return [BackboneSpec("careful", build)]

    registry.register(Careful(), "careful")
    with pytest.raises(ft.FtError) as err:
        ft.run(make_recipe(backbone={"name": "careful"}, data=SMALL), quiet=True)
    assert str(err.value) == "/models/careful: weights folder is empty\n  hint: download them"


def test_require_names_the_plugins_own_distribution(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "ftx_gpu").mkdir(parents=True)
    (site / "ftx_gpu" / "__init__.py").write_text(textwrap.dedent("""
        from ft.specs import require

        require("zz_not_installed_module", "gpu")
    """))
    info = site / "ftkit_extra-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ftkit-extra\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ft]\nextra = ftx_gpu\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ImportError) as err:
        import ftx_gpu  # noqa: F401
    assert str(err.value) == ("zz_not_installed_module is not installed; install it with: "
                              "pip install 'ftkit-extra[gpu]'")
    # the same call in a built-in plugin names ftkit's extra
    with pytest.raises(ImportError, match=r"pip install 'ftkit\[vision\]'"):
        exec("require('zz_not_installed_module', 'vision')", {"__name__": "ft.plugins.vision", "require": require})
    # named outright; and without an extra, the module itself
    with pytest.raises(ImportError, match=r"pip install 'my-dist\[x\]'"):
        require("zz_not_installed_module", "x", distribution="my-dist")
    with pytest.raises(ImportError, match=r"pip install zz_not_installed_module \(needed by my-dist\)$"):
        require("zz_not_installed_module", distribution="my-dist")
    require("json", "never")  # installed: nothing to say
