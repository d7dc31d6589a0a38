"""Lifecycle events, fired by ``Trainer.fit`` and nowhere else.

One event reaches, in this order:

1. every registered plugin that implements it (``ft.register_plugin``, the
   ``ft`` entry points), one at a time in pluggy's order (the last
   registered first), through :meth:`Registry.call_each`, which names a
   plugin that raises;
2. the trainer's ``callbacks``, in the order given.

The events of a run come in this order: ``ft_run_start`` once,
``ft_step_end`` every ``train.log_every`` optimizer steps (only when a
plugin or callback implements it: :meth:`Events.listens`),
``ft_checkpoint_saved`` (when the run writes checkpoints) then
``ft_epoch_end`` after each epoch, and ``ft_run_end`` once after training
(and, under ``ft.run``, after the final evaluation and the run's files).
``ft_run_end`` is not fired when the run fails or is interrupted.

A callback is any object with methods named like the lifecycle hooks
(``ft_run_start(run)``, ``ft_step_end(run, step, metrics)``,
``ft_epoch_end(run, epoch, metrics)``,
``ft_checkpoint_saved(run, path, epoch)``, ``ft_run_end(run, summary)``);
it needs no ``@ft.hookimpl``. A method named like a hook that is not one
(``ft_epoch_ends``, ``on_epoch_end``) would never be called, so the trainer
refuses it when it is built (:func:`check_callbacks`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ._registry import PluginRecord, Registry, get_registry
from .errors import FtError, did_you_mean
from .specs import KINDS

#: the lifecycle hooks, in the order a run fires them
LIFECYCLE = ("ft_run_start", "ft_step_end", "ft_checkpoint_saved", "ft_epoch_end", "ft_run_end")
#: method-name prefixes that say "this is meant as an event handler"
_HANDLER_PREFIXES = ("ft_", "on_")


def check_callbacks(callbacks: Iterable[Any]) -> None:
    """Raise :class:`FtError` for a callback method that looks like a hook
    but is none (``ft_epoch_ends``, ``on_epoch_end``, or a registration hook
    such as ``ft_backbones``, which callbacks never receive)."""
    for callback in callbacks:
        who = f"callback {type(callback).__name__}"
        for name in dir(callback):
            if name in LIFECYCLE or not name.startswith(_HANDLER_PREFIXES):
                continue
            if not callable(getattr(callback, name, None)):
                continue
            if name in KINDS:
                raise FtError(f"method {name!r} is a registration hook, which the trainer never calls on a callback",
                              where=who, hint="register the object as a plugin instead: "
                                              "ft.register_plugin(obj, 'NAME')")
            close = did_you_mean(name, LIFECYCLE) or ""
            raise FtError(f"method {name!r} is not a lifecycle hook, so it would never be called", where=who,
                          hint=(close + " " if close.startswith("did you mean") else "")
                          + f"the lifecycle hooks are {', '.join(LIFECYCLE)}")


class Events:
    """Fires one lifecycle event to the registered plugins, then to the
    Python callbacks (see the module docstring). ``registry`` None: the
    process-wide one, looked up at the first event (a trainer that only
    evaluates never loads the plugins for it)."""

    def __init__(self, callbacks: Iterable[Any], registry: Registry | None = None):
        self.callbacks = list(callbacks)
        check_callbacks(self.callbacks)
        self._registry = registry

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = get_registry()
        return self._registry

    def listens(self, hook: str) -> bool:
        """Whether any plugin or callback implements ``hook`` (the trainer
        skips the work of an event nobody receives)."""
        return bool(getattr(self.registry.hook, hook).get_hookimpls()) or \
            any(callable(getattr(c, hook, None)) for c in self.callbacks)

    def fire(self, hook: str, distributed: bool, **kwargs: Any) -> None:
        """Call ``hook`` on every plugin, then every callback. A plugin that
        raises is a :class:`ft.PluginError` naming it, whose hint says what
        state the run is left in; a callback's own exception propagates
        as is (``distributed``: wrapped in an :class:`FtError`, so that it
        can reach the other ranks)."""
        run = kwargs["run"]
        self.registry.call_each(hook, lambda plugin: _advice(hook, run, plugin), **kwargs)
        for callback in self.callbacks:
            fn = getattr(callback, hook, None)
            if fn is None:
                continue
            try:
                fn(**kwargs)
            except FtError:
                raise
            except Exception as exc:
                if not distributed:
                    raise
                raise FtError(f"callback {type(callback).__name__}.{hook} failed: {exc!r}",
                              hint="run with --debug for its traceback") from exc


def _advice(hook: str, run: Any, plugin: PluginRecord) -> str:
    """What a person can do when ``plugin``'s ``hook`` failed, and what state the run is in."""
    if hook == "ft_run_start":
        return f"nothing was trained yet: {plugin.remedy}, then run again"
    if hook == "ft_run_end":
        where = f"; the run directory {run.run_dir} is complete" if run.run_dir else ""
        return f"training and the final evaluation finished{where}: {plugin.remedy}"
    recipe, run_dir = run.recipe, Path(run.run_dir) if run.run_dir else None
    if run_dir is None or not run.trainer.cfg.checkpoint:
        return (f"the run stopped and train.checkpoint is off, so there is no checkpoint: {plugin.remedy}, "
                "then run again")
    if recipe is None:
        command = "Trainer.fit(resume=True)"
    else:
        command = f"ft run {recipe.path} --resume {run_dir}" if recipe.path else "ft.run(recipe, resume=True)"
    return (f"the run stopped; its last checkpoint (in {run_dir / 'checkpoints'}) was written before the hook "
            f"ran and is intact: {plugin.remedy}, then continue the run: {command}")
