"""ftkit: plugin-based fine-tuning for vision, text, speech and recommendation.

``import ft`` is cheap: torch and the plugins load on first use of a name
below, so ``ft --help`` never imports torch.

    import ft
    result = ft.run("recipes/speech_accent.toml", overrides={"train.epochs": 3})
    print(result.metrics["test"]["accuracy"], result.run_dir)
"""

from __future__ import annotations

import importlib

import pluggy

#: This package's version (the ``ftkit`` distribution's).
__version__ = "0.1.0"

#: Marker for plugin hook implementations: ``@ft.hookimpl def ft_backbones(): ...``
hookimpl = pluggy.HookimplMarker("ft")

# Every name a plugin author or embedder uses, and the module that defines it;
# docs/plugin_api.md documents each (tests/core/test_public_api.py checks both).
_LAZY = {
    # what a plugin provides: the contracts
    "Backbone": "contracts", "Head": "contracts", "Evaluator": "contracts", "TaskInfo": "contracts",
    "DataBundle": "contracts", "LayerGroup": "contracts", "BuildContext": "contracts", "groups_by_prefix": "contracts",
    "HEAD_GROUP": "contracts",
    "FreezeStrategy": "freezing", "ParamGroup": "freezing", "Progress": "freezing",
    "ExactSum": "metrics", "checkpoint_modules": "activation_checkpointing",
    # how a plugin registers it
    "BackboneSpec": "specs", "HeadSpec": "specs", "FreezeStrategySpec": "specs", "DatasetFormatSpec": "specs",
    "SectionSpec": "specs", "LoggerSpec": "specs", "Options": "specs", "NoOptions": "specs", "RecipePath": "specs",
    "ExistingPath": "specs", "require": "specs",
    # errors for people
    "FtError": "errors", "RecipeError": "errors", "DataError": "errors", "PluginError": "errors",
    # embedding
    "run": "engine", "build_model": "engine", "load_run": "engine", "evaluate_run": "engine",
    "predict_run": "engine", "export_run": "engine", "Result": "engine", "LoadedRun": "engine", "assemble": "engine",
    "load_recipe": "recipe", "Recipe": "recipe",
    "Trainer": "trainer", "FitResult": "trainer", "RunInfo": "trainer",
    "FtModel": "model",
    "register_plugin": "_registry", "unregister_plugin": "_registry", "get_registry": "_registry",
    "Distributed": "distributed", "get_distributed": "distributed",
}

__all__ = ["hookimpl", "__version__", *_LAZY]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use (keeps ``import ft`` cheap)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ft' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, for ``dir(ft)`` and tab completion."""
    return sorted(__all__)
