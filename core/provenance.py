"""Which plugin provided each part of a run, and what to say when one is
missing or fails.

A run records, in env.json (``components``) and MODEL_CARD.md, the plugin,
distribution and version behind every component it used: backbone, dataset
format, head, freeze strategy and extra recipe sections. Loading the run
again (``ft eval``/``predict``/``export``, ``ft.load_run``) reads that record
back, so a plugin that is gone is named with the distribution (and version)
to install, or, for one registered in-process, with how to register it
again. Plugin code that raises while it builds a component is reported as
"plugin NAME (distribution D version V) failed in STEP (KIND 'name'):
ERROR", an :class:`ft.PluginError`; an :class:`ft.FtError` the plugin
raises itself passes through unchanged (it already says what to do).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from ._registry import DISABLE_ENV, IN_PROCESS, Registry
from .errors import FtError, PluginError
from .specs import KINDS

T = TypeVar("T")

_HOOKS = {kind: hook for hook, (kind, _) in KINDS.items()}


def recipe_components(recipe: Any) -> list[tuple[str, str]]:
    """``(hook, name)`` of every plugin-provided part a recipe uses, in the
    order of the data flow, its extra sections last."""
    return [("ft_backbones", recipe.backbone.name), ("ft_dataset_formats", recipe.data.name),
            ("ft_heads", recipe.head.name), ("ft_freeze_strategies", recipe.freeze.name),
            *(("ft_recipe_sections", name) for name in recipe.sections)]


def provenance(recipe: Any, registry: Registry) -> list[dict[str, str]]:
    """Kind, name, plugin, distribution and version of every component a
    recipe uses (what env.json and MODEL_CARD.md record)."""
    return [registry.component(hook, name) for hook, name in recipe_components(recipe)]


def check_installed(components: Any, registry: Registry, where: str) -> None:
    """Raise a :class:`PluginError` for the first recorded component (see
    :func:`provenance`) that no loaded plugin provides now: which
    distribution and version to install, or, for a plugin that was
    registered in-process (``ft.register_plugin``), that it must be
    registered again in the same way first."""
    for used in components if isinstance(components, list) else []:
        hook = _HOOKS.get(used.get("kind", "")) if isinstance(used, dict) else None
        name = used.get("name") if hook else None
        if not isinstance(name, str) or name in registry.entries[hook]:
            continue
        kind, plugin = used["kind"], used.get("plugin", "?")
        dist, version = used.get("distribution", "?"), used.get("version") or "?"
        message = f"this run used {kind} {name!r} from plugin {plugin}, which "
        if dist == IN_PROCESS:
            raise PluginError(message + "was registered in the process that trained it (ft.register_plugin) and "
                              "is not registered now", where=where,
                              hint=f"register it again in the same way before loading the run: "
                                   f"ft.register_plugin(<the same plugin>, {plugin!r})")
        pin = f"{dist}=={version}" if version != "?" else dist
        record = registry.records.get(plugin)
        if record is not None and record.status != "ok":
            raise PluginError(message + f"is installed (distribution {record.distribution} version "
                              f"{record.version}) but did not load: {record.error}", where=where,
                              hint=record.remedy if record.status == "failed"
                              else f"take {record.switch_off} out of {DISABLE_ENV}")
        if record is not None:
            raise PluginError(message + f"is installed as distribution {record.distribution} version "
                              f"{record.version}, which does not provide it (the run was trained with version "
                              f"{version})", where=where,
                              hint=f"install the version the run was trained with: pip install '{pin}'")
        raise PluginError(message + f"is not installed (distribution {dist} version {version})", where=where,
                          hint=f"install it: pip install '{pin}' (then check `ft plugins`)")


def plugin_step(registry: Registry, hook: str, name: str, step: str, call: Callable[[], T]) -> T:
    """``call()`` (a plugin's code for the ``name`` registered for ``hook``);
    an exception other than :class:`FtError` becomes a :class:`PluginError`
    "plugin P (distribution D version V) failed in STEP (KIND 'name'):
    ERROR" raised from it (``--debug`` shows the plugin's traceback)."""
    try:
        return call()
    except FtError:
        raise
    except Exception as exc:
        entry = registry.entries[hook].get(name)
        record = registry.records.get(entry.plugin) if entry else None
        who = record.described if record else f"plugin {entry.plugin if entry else '?'}"
        kind, key = KINDS[hook]
        remedy = record.remedy if record else "fix the plugin"
        raise PluginError(f"{who} failed in {step} ({kind} {name!r}): {type(exc).__name__}: {exc}".rstrip(": "),
                          hint=f"check the options under [{key.split('.')[0]}]; if they are right, this is a bug "
                               f"in the plugin: {remedy} (ft --debug shows its traceback)") from exc
