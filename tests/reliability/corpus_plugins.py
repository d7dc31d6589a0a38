"""Faulty plugins: ones that exit or raise at import, misspell a hook, take a
built-in's name, register a name another plugin has, or raise in a
lifecycle hook.

A plugin that must be found through a real entry point runs ``ft`` as a
process (a ``.dist-info`` folder on PYTHONPATH declares it, as
tests/conftest.py's ``toy_env`` does); the others are registered in-process
(``Case.plugins``), which goes through the same registry code.
"""

from __future__ import annotations

import os
from pathlib import Path

import ft
from ft.specs import BackboneSpec

from corpus_base import Case, Workspace, keeps_checkpoint
from corpus_data import data_recipe
from corpus_media import clips, tree
from toy_plugin import ToyOptions, build_backbone, toy_recipe

TESTS = Path(__file__).resolve().parents[1]
FAILED = ("failed", "error")


def entry_point_env(ws: Workspace, plugins: dict[str, tuple[str, str, str]]) -> dict:
    """An environment in which a subprocess ``ft`` finds ``plugins`` (entry
    point name -> (distribution, module, module source)) and the toy plugin."""
    site = ws.path("site")
    declared = {**plugins, "toy": ("ftkit-toy", "toy_plugin", None)}
    for ep, (dist, module, source) in declared.items():
        if source is not None:
            ws.write(f"site/{module}.py", source)
        info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        with (info / "entry_points.txt").open("a") as fh:
            if fh.tell() == 0:
                fh.write("[ft]\n")
            fh.write(f"{ep} = {module}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "250"  # ft plugins' table: no wrapped words
    return env


def listing(cid: str, ep: str, source: str, words: tuple, *, json: bool = False) -> Case:
    """``ft plugins`` with one faulty plugin beside the toy one: exit 0, the
    faulty one listed with its error, the toy one working (``toy_mlp``)."""
    def build(ws: Workspace) -> list[str]:
        ws.state["env"] = entry_point_env(ws, {ep: ("ftkit-broken", f"broken_{ep}", source)})
        return ["plugins", "--json"] if json else ["plugins"]

    return Case(f"plugin-{cid}", build, 0, (ep, *words, "toy_mlp"), subprocess=True)


SHADOW = '''\
"""Takes the built-in speech plugin's entry-point name and one of its backbone names."""
import ft
from ft.specs import BackboneSpec


@ft.hookimpl
def ft_backbones():
    return [BackboneSpec("logmel_cnn", lambda options, ctx: None)]
'''


def _shadow_listing(ws: Workspace) -> list[str]:
    ws.state["env"] = entry_point_env(ws, {"speech": ("shadow-speech", "shadow_speech", SHADOW)})
    return ["plugins"]


def _shadow_validate(ws: Workspace) -> list[str]:
    """A speech recipe whose backbone (logmel_cnn) both speech plugins register."""
    ws.state["env"] = entry_point_env(ws, {"speech": ("shadow-speech", "shadow_speech", SHADOW)})
    recipe = data_recipe(ws, "audio_folder", tree("clips", clips())(ws))
    return ["validate", ws.recipe(recipe)]


FLAKY_LOGGER = '''\
"""A logger plugin whose epoch-end hook fails."""
import ft


@ft.hookimpl
def ft_epoch_end(run, epoch, metrics):
    raise RuntimeError("logger is down")
'''


def _hook_raises(ws: Workspace) -> list[str]:
    ws.state["env"] = entry_point_env(ws, {"flaky_logger": ("ftkit-flaky", "flaky_logger", FLAKY_LOGGER)})
    recipe = toy_recipe(ws.root, data={"n_train": 32, "n_val": 16, "n_test": 16},
                        train={"epochs": 2, "progress": False})
    return ["run", ws.recipe(recipe), "--quiet"]


# -- in-process plugins -------------------------------------------------------------------------


class TwinA:
    """Registers backbone ``twin_net``."""

    @ft.hookimpl
    def ft_backbones(self):
        return [BackboneSpec("twin_net", build_backbone, ToyOptions)]


class TwinB(TwinA):
    """Registers backbone ``twin_net`` too."""


class Boom:
    """Its registration hook raises."""

    @ft.hookimpl
    def ft_backbones(self):
        raise ValueError("exploding_net cannot find its weights")


class WrongSpec:
    """Returns something that is not a spec."""

    @ft.hookimpl
    def ft_backbones(self):
        return ["not a spec"]


def _toy(backbone: str | None = None):
    def build(ws: Workspace) -> list[str]:
        recipe = toy_recipe(ws.root)
        if backbone:
            recipe["backbone"] = {"name": backbone}
        return ["validate", ws.recipe(recipe)]

    return build


TWINS = (("twin_a", TwinA), ("twin_b", TwinB))

CASES: list[Case] = [
    listing("import-sys-exit", "exiter", "import sys\nsys.exit(3)\n", (FAILED,)),
    listing("import-keyboard-interrupt", "ctrl_c", "raise KeyboardInterrupt\n", (FAILED,)),
    listing("import-error", "needs_missing", "import not_a_real_module_xyz\n", (FAILED, "not_a_real_module_xyz"),
            json=True),
    listing("misspelt-hook", "typo", "import ft\n\n\n@ft.hookimpl\ndef ft_backbone():\n    return []\n",
            ("ft_backbone",)),
    Case("plugin-shadows-builtin-listing", _shadow_listing, 0, ("speech", "shadow-speech", "ftkit"), subprocess=True),
    Case("plugin-shadows-builtin-recipe-uses-its-name", _shadow_validate, 2, ("logmel_cnn", "shadow-speech", "ftkit"),
         subprocess=True),
    Case("plugin-epoch-end-hook-raises", _hook_raises, 2, ("flaky_logger", "logger is down"),
         after=keeps_checkpoint("run"), subprocess=True),
    Case("plugin-same-backbone-twice-unused", _toy(), 0, ("valid",), plugins=TWINS),
    Case("plugin-same-backbone-twice-used", _toy("twin_net"), 2, ("twin_net", "twin_a", "twin_b"), plugins=TWINS),
    Case("plugin-registration-raises-listing", lambda ws: ["plugins", "--json"], 0, ("boom", FAILED, "exploding_net"),
         plugins=(("boom", Boom),)),
    Case("plugin-registration-raises-others-work", _toy(), 0, ("valid",), plugins=(("boom", Boom),)),
    Case("plugin-registration-raises-name-used", _toy("exploding_net"), 2, ("exploding_net", "boom"),
         plugins=(("boom", Boom),)),
    Case("plugin-wrong-spec-type", lambda ws: ["plugins", "--json"], 0, ("wrong_spec", FAILED, "BackboneSpec"),
         plugins=(("wrong_spec", WrongSpec),)),
]
