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

__version__ = "0.1.0"

#: Marker for plugin hook implementations: ``@ft.hookimpl def ft_backbones(): ...``
hookimpl = pluggy.HookimplMarker("ft")

_LAZY = {
    "run": "engine", "build_model": "engine", "load_run": "engine", "evaluate_run": "engine",
    "predict_run": "engine", "export_run": "engine", "Result": "engine", "assemble": "engine",
    "load_recipe": "recipe", "Recipe": "recipe",
    "Trainer": "trainer", "FitResult": "trainer", "RunInfo": "trainer",
    "FtModel": "model",
    "Backbone": "contracts", "Head": "contracts", "Evaluator": "contracts", "TaskInfo": "contracts",
    "DataBundle": "contracts", "LayerGroup": "contracts", "BuildContext": "contracts", "groups_by_prefix": "contracts",
    "FreezeStrategy": "freezing", "ParamGroup": "freezing", "Progress": "freezing",
    "FtError": "errors", "RecipeError": "errors", "DataError": "errors", "PluginError": "errors",
    "register_plugin": "_registry", "unregister_plugin": "_registry", "get_registry": "_registry",
    "checkpoint_modules": "activation_checkpointing", "ExactSum": "metrics",
    "Distributed": "distributed", "get_distributed": "distributed",
}

__all__ = ["hookimpl", "__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ft' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
