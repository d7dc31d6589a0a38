"""Plugin loading and the name registries (machinery; see hookspecs.py).

Plugins come from the ``ft`` entry-point group (built-ins included), then
from :func:`register_plugin` calls made in-process. A plugin that fails to
load is recorded with its error (status ``failed``) and the others keep
working: an exception, ``sys.exit()`` or ``KeyboardInterrupt`` at import, a
registration hook that fails, or a hook name that is not in the contract
(``ft_backbone`` for ``ft_backbones``; pluggy's ``check_pending`` is done
plugin by plugin).

Two plugins registering the same name for the same kind (two backbones
``resnet18``) is an error naming both plugins and distributions, raised only
when a recipe uses that name. Two distributions may ship an entry point of
the same name: the built-in one (distribution ``ftkit``) keeps the plain
name, the other is loaded as ``DISTRIBUTION:NAME`` and the clash is listed
as a conflict by ``ft plugins``; nothing replaces a plugin silently.

``FT_DISABLE_PLUGINS`` is a comma-separated list; each entry switches off
plugins before they are imported:

* ``NAME``: every plugin whose entry point is ``NAME`` (``speech``), in
  whichever distribution;
* ``DISTRIBUTION:NAME``: that distribution's plugin only
  (``ftkit-speech-extra:speech`` keeps the built-in ``speech``,
  ``ftkit:speech`` lets the third-party one take over);
* ``DISTRIBUTION:*``: every plugin of a distribution.

Distribution names compare as pip does (case, ``-``, ``_`` and ``.`` alike).
"""

from __future__ import annotations

import os
import re
import signal
import threading
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import FtError, PluginError, did_you_mean
from .specs import KINDS, SPEC_TYPES

GROUP = "ft"
#: the distribution of the built-in plugins: it keeps an entry-point name another distribution also uses
BUILTIN_DISTRIBUTION = "ftkit"
DISABLE_ENV = "FT_DISABLE_PLUGINS"
IN_PROCESS = "(in-process)"
HOOK_NAMES = tuple(sorted(name for name in vars(hookspecs) if name.startswith("ft_")))


@dataclass
class PluginRecord:
    """One plugin as ``ft plugins`` shows it. ``name`` is the key it is
    registered under: the entry-point name, or ``DISTRIBUTION:NAME`` when a
    built-in (or an earlier distribution) already uses that name."""

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

    @property
    def label(self) -> str:
        """``plugin NAME (distribution D)``, as messages name a plugin."""
        return f"plugin {self.name} (distribution {self.distribution})"

    @property
    def described(self) -> str:
        """``plugin NAME (distribution D version V)``, as provenance names a plugin."""
        version = f" version {self.version}" if self.version else ""
        return f"plugin {self.name} (distribution {self.distribution}{version})"

    @property
    def switch_off(self) -> str:
        """The ``FT_DISABLE_PLUGINS`` entry that switches off this plugin alone."""
        return self.name if ":" in self.name else f"{self.distribution}:{self.name}"

    @property
    def remedy(self) -> str:
        """What a person can do about this plugin failing."""
        if self.distribution == IN_PROCESS:
            return f"fix the plugin, or unregister it (ft.unregister_plugin({self.name!r}))"
        return f"fix or update the plugin, or switch it off with {DISABLE_ENV}={self.switch_off}"


@dataclass
class Entry:
    """A registered spec and the plugin that registered it."""

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
        #: (hook, name) -> every plugin that registered it, when more than one did
        self.clashes: dict[tuple[str, str], list[Entry]] = {}
        #: what ``ft plugins`` lists as conflicts (names claimed twice)
        self.conflicts: list[str] = []

    # -- loading ------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Import and register every plugin of the ``ft`` entry-point group."""
        disabled = _disabled_entries(os.environ.get(DISABLE_ENV, ""))
        by_name: dict[str, list[metadata.EntryPoint]] = {}
        for ep in metadata.entry_points(group=GROUP):
            by_name.setdefault(ep.name, []).append(ep)
        with _CtrlCWatch() as ctrl_c:
            for name in sorted(by_name):
                # the built-in keeps the plain name; any other distribution's plugin is keyed DISTRIBUTION:NAME
                eps = sorted(by_name[name], key=lambda e: (_normalize(_dist(e)) != BUILTIN_DISTRIBUTION, _dist(e)))
                loaded: list[PluginRecord] = []
                for i, ep in enumerate(eps):
                    dist = _dist(ep)
                    version = ep.dist.version if ep.dist else "?"
                    record = PluginRecord(name if i == 0 else f"{dist}:{name}", dist, version)
                    self.records[record.name] = record
                    hit = _disabled_by(disabled, name, dist)
                    if hit:
                        record.status, record.error = "disabled", f"switched off by {DISABLE_ENV} ({hit})"
                        continue
                    try:
                        module = ep.load()
                    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # one plugin must not stop ft
                        if isinstance(exc, KeyboardInterrupt) and ctrl_c.pressed:
                            raise  # a real Ctrl-C, not a plugin raising it
                        record.status, record.error = "failed", _describe(exc, "while being imported")
                        continue
                    self._register(module, record)
                    if record.status == "ok":
                        loaded.append(record)
                if len(loaded) > 1:
                    first, others = loaded[0], loaded[1:]
                    self.conflicts.append(
                        f"plugin name {name!r} is used by {len(loaded)} distributions: "
                        f"{', '.join(r.distribution for r in loaded)}; all are loaded, as "
                        f"{', '.join(repr(r.name) for r in loaded)} — keep one with {DISABLE_ENV}="
                        f"{','.join(r.switch_off for r in others)} (or {DISABLE_ENV}={first.switch_off})")

    def register(self, plugin: Any, name: str, distribution: str = IN_PROCESS, version: str = "") -> None:
        """Register an object or module as a plugin from Python code."""
        if name in self.records and self.records[name].status == "ok":
            raise PluginError(f"a plugin named {name!r} is already registered "
                              f"(from {self.records[name].distribution})")
        record = PluginRecord(name, distribution, version)
        self.records[name] = record
        self._register(plugin, record)

    def unregister(self, name: str) -> None:
        """Remove an in-process plugin and everything it registered."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.records.pop(name, None)
        for by_name in self.entries.values():
            for key in [k for k, e in by_name.items() if e.plugin == name]:
                del by_name[key]
        for key, claimants in list(self.clashes.items()):
            claimants[:] = [e for e in claimants if e.plugin != name]
            if len(claimants) < 2:
                del self.clashes[key]
                if claimants:
                    self.entries[key[0]][key[1]] = claimants[0]
        self.conflicts = [c for c in self.conflicts if f"plugin {name} (" not in c]

    def _register(self, plugin: Any, record: PluginRecord) -> None:
        try:
            self.pm.register(plugin, name=record.name)
            self._check_hook_names(plugin)
            collected = {hook: self._call_registration(hook, record) for hook in KINDS}
        except (Exception, SystemExit) as exc:  # registration hooks run the plugin's code too
            if self.pm.get_plugin(record.name) is not None:
                self.pm.unregister(name=record.name)
            record.status, record.error = "failed", _describe(exc, "while registering")
            return
        for hook, specs in collected.items():
            for spec in specs:
                self._add(hook, spec, record)

    def _check_hook_names(self, plugin: Any) -> None:
        """pluggy's ``check_pending`` for one plugin: a hook name that is not
        in the contract fails this plugin, not every ``ft`` command."""
        unknown = sorted({caller.name for caller in self.pm.get_hookcallers(plugin) or []
                          if not caller.has_spec()
                          and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())})
        if unknown:
            hints = [did_you_mean(name, HOOK_NAMES) for name in unknown]
            raise PluginError(f"unknown hook {', '.join(repr(n) for n in unknown)} (not in ft's hookspecs)"
                              + "".join(f"; {h}" for h in hints if h))

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
        entry = Entry(spec, record.name, record.distribution)
        existing = self.entries[hook].get(spec.name)
        if existing is None:
            self.entries[hook][spec.name] = entry
            record.provides.setdefault(kind, []).append(spec.name)
            return
        # only recipes that use this name fail (see check); the first plugin's spec stays listed
        self.clashes.setdefault((hook, spec.name), [existing]).append(entry)
        self.conflicts.append(
            f"{kind} {spec.name!r} is registered twice: by plugin {existing.plugin} "
            f"(distribution {existing.distribution}) and by plugin {record.name} "
            f"(distribution {record.distribution}) — switch one off with {DISABLE_ENV}="
            f"{record.switch_off} (or {self._switch_off(existing)})")

    def _switch_off(self, entry: Entry) -> str:
        record = self.records.get(entry.plugin)
        return record.switch_off if record else entry.plugin

    # -- lookups ------------------------------------------------------------

    def clash(self, hook: str, name: str) -> PluginError | None:
        """The error for ``name`` of ``hook`` when several plugins registered it, else None."""
        claimants = self.clashes.get((hook, name))
        if not claimants:
            return None
        kind, key = KINDS[hook]
        who = " and ".join(f"by plugin {e.plugin} (distribution {e.distribution})" for e in claimants)
        switches = " or ".join(f"{DISABLE_ENV}={self._switch_off(e)}" for e in claimants)
        times = "twice" if len(claimants) == 2 else f"{len(claimants)} times"
        return PluginError(f"{kind} {name!r} is registered {times}: {who}", where=key,
                           hint=f"uninstall one of them, or switch one off: {switches}")

    def check(self, hook: str | None = None, name: str | None = None) -> None:
        """Raise if two plugins claimed ``name`` for ``hook`` (without
        arguments: any name at all)."""
        keys = [(hook, name)] if hook is not None else list(self.clashes)
        for key in keys:
            error = self.clash(*key)
            if error is not None:
                raise error

    def names(self, hook: str) -> list[str]:
        """Every name registered for ``hook``, sorted."""
        return sorted(self.entries[hook])

    def get(self, hook: str, name: str, where: str | None = None) -> Any:
        """The spec registered under ``name`` for ``hook``, or a clear error."""
        self.check(hook, name)
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
        """The plugin that registered ``name`` for ``hook`` ("?" if none did)."""
        entry = self.entries[hook].get(name)
        return entry.plugin if entry else "?"

    def component(self, hook: str, name: str) -> dict[str, str]:
        """Where the ``name`` registered for ``hook`` comes from: its kind, name,
        plugin, distribution and version (``"?"`` for what nobody registered)."""
        entry = self.entries[hook].get(name)
        record = self.records.get(entry.plugin) if entry else None
        return {"kind": KINDS[hook][0], "name": name, "plugin": entry.plugin if entry else "?",
                "distribution": record.distribution if record else "?", "version": record.version if record else "?"}

    def call_each(self, hook: str, hint: Callable[[PluginRecord], str], **kwargs: Any) -> None:
        """Call every plugin's implementation of ``hook`` one at a time, in
        pluggy's order (the last registered first), so that one that raises
        is named: a :class:`PluginError` "plugin NAME (distribution D): its
        HOOK hook failed: ERROR", with ``hint(record)`` as its hint. For the
        lifecycle hooks, whose return values are ignored."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                if impl.hookwrapper or impl.wrapper:  # a wrapper's generator is pluggy's to drive
                    others = [p for p in self.pm.get_plugins() if p is not impl.plugin]
                    self.pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)
                else:
                    impl.function(*(kwargs[arg] for arg in impl.argnames))
            except Exception as exc:
                record = self.records.get(impl.plugin_name) or PluginRecord(impl.plugin_name, "?", "?")
                shown = exc.message if isinstance(exc, FtError) else str(exc)
                try:
                    advice = hint(record)
                except Exception:  # the advice must not hide the plugin's error
                    advice = record.remedy
                raise PluginError(f"its {hook} hook failed: {type(exc).__name__}: {shown}".rstrip(": "),
                                  where=record.label, hint=advice) from exc

    @property
    def hook(self):
        return self.pm.hook


def _dist(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist else "?"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _disabled_entries(text: str) -> list[str]:
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def _disabled_by(entries: list[str], name: str, dist: str) -> str | None:
    """The ``FT_DISABLE_PLUGINS`` entry that switches off ``name`` of ``dist``, or None."""
    for entry in entries:
        wanted_dist, sep, wanted_name = entry.rpartition(":")
        if not sep:
            if entry == name:
                return entry
        elif _normalize(wanted_dist) == _normalize(dist) and wanted_name.strip() in (name, "*"):
            return entry
    return None


def _describe(exc: BaseException, when: str) -> str:
    """One line for ``ft plugins``: what the plugin did wrong."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}) {when}"
    if isinstance(exc, KeyboardInterrupt):
        return f"raised KeyboardInterrupt {when}"
    if isinstance(exc, FtError):
        return f"{type(exc).__name__}: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class _CtrlCWatch:
    """Tells a real Ctrl-C from a plugin that raises ``KeyboardInterrupt``
    while it is imported: the first must stop ``ft``, the second only fails
    that plugin. Watches SIGINT in the main thread only (where Python
    delivers it)."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def __enter__(self) -> _CtrlCWatch:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None:  # None: a handler not installed from Python, leave it alone
                self._previous = previous
                signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, signum, frame) -> None:
        self.pressed = True
        if callable(self._previous):
            self._previous(signum, frame)
        elif self._previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


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
    """Remove a plugin registered with :func:`register_plugin`."""
    get_registry().unregister(name)
