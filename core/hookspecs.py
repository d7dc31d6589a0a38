"""The whole plugin contract of ftkit, in one file.

A plugin is any module or object with functions named like the specs below,
marked with ``@ft.hookimpl``. Built-in plugins (vision, nlp, speech,
recommender, heads, freeze) and third-party packages register the same way:
through the ``ft`` entry-point group in their ``pyproject.toml``::

    [project.entry-points.ft]
    myplugin = "my_package.ft_plugin"

Two kinds of hook:

* **Registration hooks** return a list of specs (see :mod:`ft.specs`). Each
  spec has a ``name``; recipes refer to it by that name (``backbone.name``,
  ``head.type``, ``freeze.strategy``, ``data.format``). Two plugins that
  register the same name for the same kind is an error naming both. A
  registration hook must be cheap: keep heavy imports (timm, transformers,
  torchaudio) inside the spec's ``build`` function, and check for them with
  :func:`ft.specs.require` at module import so a missing dependency is
  reported by ``ft plugins`` instead of failing mid-run.
* **Lifecycle hooks** are fired by ``Trainer.fit`` (so by ``ft run`` and a
  bare ``ft.Trainer`` alike) at run start, every ``train.log_every``
  optimizer steps (``ft_step_end``), after each epoch's checkpoint
  (``ft_checkpoint_saved``), after each epoch (``ft_epoch_end``) and at run
  end; each event reaches every registered plugin first, then the Python
  ``callbacks=`` objects in the order given. Loggers and callbacks implement
  them. Their return values are ignored; an exception in one stops the run
  with one message naming the plugin (a logger that cannot write should say
  so, not fail silently), and under several ranks every rank stops.

Lookups are by registered name; nothing in the engine asks which domain a
plugin serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # the hints only: importing these here would load torch for `ft --help`
    from .specs import BackboneSpec, DatasetFormatSpec, FreezeStrategySpec, HeadSpec, LoggerSpec, SectionSpec
    from .trainer import RunInfo

#: Marker for the hook specifications below (plugins use :data:`ft.hookimpl`).
hookspec = pluggy.HookspecMarker("ft")


# -- registration -----------------------------------------------------------


@hookspec
def ft_backbones() -> list[BackboneSpec]:
    """Return the backbones this plugin provides, as ``ft.specs.BackboneSpec``.

    ``BackboneSpec.build(options, ctx)`` returns an :class:`ft.Backbone`: a
    module mapping a batch's inputs to pooled features ``[B, feature_dim]``,
    with ``layer_groups()`` ordered from input to output and its own
    preprocessing. ``options`` is the validated ``[backbone]`` section (an
    instance of ``BackboneSpec.options``); ``ctx.load_pretrained`` is False
    when ftkit will overwrite the weights anyway (reloading a finished run).
    """


@hookspec
def ft_heads() -> list[HeadSpec]:
    """Return the heads this plugin provides, as ``ft.specs.HeadSpec``.

    ``HeadSpec.build(options, feature_dim, task, ctx)`` returns an
    :class:`ft.Head`: a module from features to outputs that also knows its
    loss, its evaluator (task metrics) and how to turn outputs into
    predictions. ``HeadSpec.tasks`` lists the ``task.type`` values it serves.
    """


@hookspec
def ft_freeze_strategies() -> list[FreezeStrategySpec]:
    """Return freeze strategies, as ``ft.specs.FreezeStrategySpec``.

    ``FreezeStrategySpec.build(options, ctx)`` returns an
    :class:`ft.FreezeStrategy`: it decides which parameters train, their
    optimizer groups and per-group learning-rate multipliers over time, and
    may add a loss term or change the model (LoRA). It must raise
    :class:`ft.FtError` when the backbone cannot be split as asked.
    """


@hookspec
def ft_dataset_formats() -> list[DatasetFormatSpec]:
    """Return dataset formats, as ``ft.specs.DatasetFormatSpec``.

    ``DatasetFormatSpec.build(options, backbone, ctx)`` returns an
    :class:`ft.DataBundle` (train/val/test datasets yielding
    ``(inputs, target)``, the inferred :class:`ft.TaskInfo`, and whether the
    training transform is random). It uses the backbone's preprocessing
    (``backbone.preprocess(train=...)``). ``read_input(raw, options,
    backbone)`` turns one ``ft predict`` argument (a path or a text) into
    model inputs. Path options should use :data:`ft.specs.ExistingPath` so a
    missing file is caught when the recipe is validated.
    """


@hookspec
def ft_recipe_sections() -> list[SectionSpec]:
    """Return extra top-level recipe sections, as ``ft.specs.SectionSpec``.

    Each spec names a section (``[mylogger]``) and a pydantic model that
    validates it. The validated section is available to lifecycle hooks as
    ``run.recipe.sections[name]``. Core section names cannot be taken.
    """


@hookspec
def ft_loggers() -> list[LoggerSpec]:
    """Return experiment loggers, as ``ft.specs.LoggerSpec``.

    ``LoggerSpec.build(options, ctx)`` returns an object with any of the
    lifecycle hook methods below (as a Python callback has). It runs only
    when a recipe names it in ``[log] backends`` (or ``ft run --log NAME``);
    its options come from ``[log.NAME]``. The built-in ones are
    ``tensorboard`` and ``mlflow``; W&B, ClearML and the like are plugin
    packages that register one here.
    """


# -- lifecycle --------------------------------------------------------------


@hookspec
def ft_run_start(run: RunInfo) -> None:
    """Called once before the first training step.

    ``run`` is an :class:`ft.RunInfo`: the resolved recipe (or None for a
    bare ``ft.Trainer``), the run directory (or None), the model, the
    effective device and precision.
    """


@hookspec
def ft_step_end(run: RunInfo, step: int, metrics: dict[str, float]) -> None:
    """Called every ``train.log_every`` optimizer steps (and not at all,
    at no cost, when no plugin or callback implements it).

    ``step`` counts optimizer steps from 1. ``metrics`` holds ``step``,
    ``epoch`` (fractional: 2.5 is half-way through the third epoch),
    ``train_loss`` (the mean over every rank's examples since the last
    call), ``lr`` (the head's learning rate) and ``lr_GROUP`` for each
    optimizer group (a frozen group reads 0).
    """


@hookspec
def ft_epoch_end(run: RunInfo, epoch: int, metrics: dict[str, float]) -> None:
    """Called after each epoch's evaluation with that epoch's metrics.

    ``epoch`` counts from 1. ``metrics`` maps names like ``epoch``,
    ``train_loss``, ``val_accuracy``, ``lr`` to numbers. On resume, epochs
    already done are not replayed. A handler may end the run here with
    ``run.trainer.request_stop(reason)`` (a sweep prunes a trial so).
    """


@hookspec
def ft_checkpoint_saved(run: RunInfo, path: Path, epoch: int) -> None:
    """Called after a checkpoint directory was written completely to ``path``.

    ``epoch`` is the number of whole epochs finished (a checkpoint written
    mid-epoch, such as on Ctrl-C, counts only the whole ones).
    """


@hookspec
def ft_run_end(run: RunInfo, summary: dict[str, Any]) -> None:
    """Called once after training and the final evaluation, with the summary
    that is also written to ``summary.json`` (a bare ``ft.Trainer``: its
    ``FitResult.to_summary()``). Not called when a run fails or is
    interrupted."""
