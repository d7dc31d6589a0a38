"""Plugin loading and the name registries (machinery; see hookspecs.py).

Plugins come from the ``ft`` entry-point group (built-ins included), then
from :func:`register_plugin` calls made in-process. A plugin that fails to
import is recorded with its error and the others keep working. Two plugins
registering the same name for the same kind is an error naming both.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, did_you_mean
from .specs import KINDS, SPEC_TYPES

GROUP = "ft"


@dataclass
class PluginRecord:
    """One plugin as ``ft plugins`` shows it."""

    name: str
    distribution: str
    version: str
    status: str = "ok"  # ok | failed | disabled
    error: str = ""
    provides: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "plugin": self.name, "distribution": self.distribution, "version": self.version,
            "status": self.status, "error": self.error, "provides": self.provides,
        }


@dataclass
class Entry:
    spec: Any
    plugin: str
    distribution: str


class Registry:
    """The loaded plugins and every name they registered, by kind."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.entries: dict[str, dict[str, Entry]] = {hook: {} for hook in KINDS}
        self.conflicts: list[str] = []

    # -- loading ------------------------------------------------------------

    def load_entry_points(self) -> None:
        disabled = {n.strip() for n in os.environ.get("FT_DISABLE_PLUGINS", "").split(",") if n.strip()}
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if ep.name in self.records:
                prev = self.records[ep.name]
                self.conflicts.append(
                    f"plugin name {ep.name!r} is registered by two distributions: {prev.distribution} and {dist}")
                continue
            record = PluginRecord(ep.name, dist, version)
            self.records[ep.name] = record
            if ep.name in disabled:
                record.status = "disabled"
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                record.status = "failed"
                record.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                continue
            self._register(module, record)
        self.pm.check_pending()

    def register(self, plugin: Any, name: str, distribution: str = "(in-process)", version: str = "") -> None:
        """Register an object or module as a plugin from Python code."""
        if name in self.records and self.records[name].status == "ok":
            raise PluginError(f"a plugin named {name!r} is already registered "
                              f"(from {self.records[name].distribution})")
        record = PluginRecord(name, distribution, version)
        self.records[name] = record
        self._register(plugin, record)
        self.pm.check_pending()

    def unregister(self, name: str) -> None:
        """Remove an in-process plugin and everything it registered."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.records.pop(name, None)
        for by_name in self.entries.values():
            for key in [k for k, e in by_name.items() if e.plugin == name]:
                del by_name[key]

    def _register(self, plugin: Any, record: PluginRecord) -> None:
        try:
            self.pm.register(plugin, name=record.name)
            collected = {hook: self._call_registration(hook, record) for hook in KINDS}
        except Exception as exc:
            if self.pm.get_plugin(record.name) is not None:
                self.pm.unregister(name=record.name)
            record.status = "failed"
            record.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return
        for hook, specs in collected.items():
            for spec in specs:
                self._add(hook, spec, record)

    def _call_registration(self, hook: str, record: PluginRecord) -> list:
        impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin_name == record.name]
        specs: list = []
        for impl in impls:
            result = impl.function()
            for spec in result or []:
                if not isinstance(spec, SPEC_TYPES[hook]):
                    raise PluginError(f"{hook}() returned {type(spec).__name__}, expected {SPEC_TYPES[hook].__name__}",
                                      where=f"plugin {record.name}")
                specs.append(spec)
        return specs

    def _add(self, hook: str, spec: Any, record: PluginRecord) -> None:
        kind, _ = KINDS[hook]
        existing = self.entries[hook].get(spec.name)
        if existing is not None:
            self.conflicts.append(
                f"{kind} {spec.name!r} is registered twice: by plugin {existing.plugin} "
                f"(distribution {existing.distribution}) and by plugin {record.name} "
                f"(distribution {record.distribution})")
            return
        self.entries[hook][spec.name] = Entry(spec, record.name, record.distribution)
        record.provides.setdefault(kind, []).append(spec.name)

    # -- lookups ------------------------------------------------------------

    def check(self) -> None:
        """Raise if two plugins claimed the same name."""
        if self.conflicts:
            raise PluginError("; ".join(self.conflicts),
                              hint="uninstall one of them or block one with FT_DISABLE_PLUGINS=name")

    def names(self, hook: str) -> list[str]:
        return sorted(self.entries[hook])

    def get(self, hook: str, name: str, where: str | None = None) -> Any:
        """The spec registered under ``name`` for ``hook``, or a clear error."""
        self.check()
        entry = self.entries[hook].get(name)
        if entry is not None:
            return entry.spec
        kind, key = KINDS[hook]
        hint = did_you_mean(name, self.entries[hook])
        failed = [r for r in self.records.values() if r.status == "failed"]
        if failed:
            extra = "; ".join(f"{r.name}: {r.error}" for r in failed)
            hint = (hint + " " if hint else "") + f"(plugins that failed to load: {extra})"
        raise PluginError(f"unknown {kind} {name!r} at {key}", where=where, hint=hint or "see `ft plugins`")

    def provider(self, hook: str, name: str) -> str:
        entry = self.entries[hook].get(name)
        return entry.plugin if entry else "?"

    @property
    def hook(self):
        return self.pm.hook


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loading entry points on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        registry = Registry()
        registry.load_entry_points()
        _REGISTRY = registry
    return _REGISTRY


def reset_registry() -> None:
    """Forget loaded plugins (tests; after changing FT_DISABLE_PLUGINS)."""
    global _REGISTRY
    _REGISTRY = None


def register_plugin(plugin: Any, name: str) -> None:
    """Register a plugin object or module in this process (Python API)."""
    get_registry().register(plugin, name)


def unregister_plugin(name: str) -> None:
    get_registry().unregister(name)
