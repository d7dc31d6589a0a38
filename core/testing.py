"""The conformance kit: does a plugin keep the contract the engine relies on?

Every built-in plugin passes it, and a third-party plugin package runs it
from its own tests. Each check builds the component offline on tiny data,
exercises it the way ``ft run`` does, and raises ``AssertionError`` naming
the plugin, the component and what broke (the plugin's own exception, if
one was raised, is chained as the cause).

    from ft.testing import check_backbone, check_head, check_freeze_strategy
    from ft.testing import check_dataset_format, check_plugin

    def test_my_plugin_conforms(ft_registry, tmp_path):
        report = check_plugin("my-ft-plugin", tmp_path)   # the distribution name
        assert report["backbone"]["my_backbone"] == "ok"

``ft_registry`` (a fixture of ftkit's pytest plugin, loaded automatically
when ftkit is installed) is a fresh registry with every installed plugin
loaded; ``ft_tmp_run`` is a folder for run directories. The checks use the
process-wide registry (``ft.get_registry()``), which the fixture resets.

What each check verifies
------------------------

``check_backbone(name, options=None)`` — ``options`` default to the spec's
``BackboneSpec.sample_options`` (a small instance that builds offline):

* the options model forbids unknown keys (a RecipeError naming the key);
* it builds, and one of the dataset formats with a ``sample`` (its own
  plugin's first) gives a batch it takes; ``feature_dim`` is an int and the
  features are ``[B, feature_dim]`` and finite; gradients reach it;
* ``layer_groups()`` holds every parameter exactly once, in named groups;
* built twice with the same seed it gives the same features;
* its weights saved as safetensors and loaded into a fresh build (with
  ``load_pretrained=False``, as ``ft eval`` reloads a run) give the same
  features.

``check_head(name, options=None)`` — for each task in ``HeadSpec.tasks``
(classification, multilabel and regression on synthetic features; another
task on features of a backbone over a format's sample that serves it):

* it builds for the task; the loss is a finite scalar that falls over a
  few optimizer steps on one batch;
* its evaluator's ``compute()`` gives float metrics including the head's
  ``default_metric`` (unless that is ``loss``), each declared in the
  evaluator's ``higher_is_better``; a mergeable evaluator fed
  two halves and merged equals one fed the whole batch (what DDP relies on);
* ``predict`` gives one list of ``(label, score)`` pairs per example.

``check_freeze_strategy(name, options=None)`` — on the kit's own MLP model
(three layer groups, BatchNorm, biases), trained for two epochs with
``ft.Trainer``; required whole-number options missing from ``options`` get 1:

* applying it twice to identical models gives the same structure;
* ``param_groups`` are ``ParamGroup``s with distinct names, no parameter
  twice, every trainable parameter in one, and a float ``lr_multiplier``;
* frozen parameters stay bit-identical through training; some trainable
  parameter changes;
* ``export`` returns a module giving the trained model's outputs.

``check_dataset_format(name, options=None, folder=None)`` — ``options``
default to ``sample(folder)`` (a tiny data set written there):

* unknown option keys are a RecipeError naming the key; ``check``, if the
  format has one, returns a non-empty description;
* ``build`` returns a DataBundle with a non-empty train split and a task of
  one of the format's ``tasks``, and a backbone takes its batches;
* a path option pointing at a missing file is an ``ft.FtError`` (a
  RecipeError or DataError), never a traceback.

``check_plugin(distribution, folder=None)`` runs the checks above on every
component the distribution's ``ft`` entry points register, plus a two-step
``ft.run`` for each (paired with a backbone / format / head of its own
plugin, a built-in, or the kit's tiny ``ft_kit_mlp`` on ``ft_kit_blobs``).
It returns ``{kind: {name: "ok" | why it was skipped}}``; a component is
skipped only when the kit cannot build it on its own (a backbone without
``sample_options``, a format without ``sample``).

To give the kit something to build, add ``sample_options={...}`` to your
``BackboneSpec`` and ``sample=write_sample`` to your ``DatasetFormatSpec``,
where ``write_sample(folder) -> dict`` writes a few examples and returns
the ``[data]`` options (without ``format``).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from . import _testkit as kit
from ._registry import Registry, get_registry
from .checkpoint import load_weights, save_weights
from .contracts import Backbone, DataBundle, Head, LayerGroup, TaskInfo
from .errors import FtError
from .freezing import FreezeStrategy, ParamGroup, Progress
from .model import FtModel
from .trainer import Trainer, seed_everything

__all__ = ["check_backbone", "check_head", "check_freeze_strategy", "check_dataset_format", "check_plugin"]


# -- backbones -------------------------------------------------------------------


def check_backbone(name: str, options: dict | None = None) -> None:
    """Check the backbone ``name`` with ``options`` (default: its
    ``sample_options``); see the module docstring for what is checked."""
    with kit.workdir(None) as folder:
        _check_backbone(get_registry(), name, options, folder)


def _check_backbone(registry: Registry, name: str, options: dict | None, folder: Path) -> kit.Paired:
    what = kit.label(registry, "ft_backbones", name)
    spec = kit.spec_of(registry, "ft_backbones", name)
    options = options if options is not None else spec.sample_options
    if options is None:
        raise AssertionError(f"{what}: no options given and the spec has no sample_options")
    kit.check_unknown_key(spec, "backbone", options, folder, what)
    with kit.step(what, "building it and running a batch from a dataset format's sample"):
        paired = kit.find_pair(registry, folder, backbone=name, backbone_options=options)
    backbone, features = paired.backbone, paired.features
    assert isinstance(backbone, Backbone), f"{what}: build returned {type(backbone).__name__}, not an ft.Backbone"
    dim = getattr(backbone, "feature_dim", None)
    assert isinstance(dim, int) and not isinstance(dim, bool), f"{what}: feature_dim is {dim!r}, not an int"
    batch = len(paired.targets)
    assert tuple(features.shape) == (batch, dim), \
        f"{what}: features of a batch of {batch} have shape {tuple(features.shape)}, expected [{batch}, {dim}]"
    assert torch.isfinite(features).all(), f"{what}: the features hold NaN or inf"
    _check_layer_groups(backbone, what)
    with kit.step(what, "building it again with the same seed"):
        again = _rebuild(registry, paired, folder, load_pretrained=True, seed=0)
        torch.testing.assert_close(_features(again, paired.inputs), features, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{what}: built twice with seed 0, the features differ: {m}")
    with kit.step(what, "saving its weights as safetensors and loading them into a fresh build"):
        save_weights(backbone, folder / "backbone.safetensors")
        fresh = _rebuild(registry, paired, folder, load_pretrained=False, seed=1)
        load_weights(fresh, folder / "backbone.safetensors")
        torch.testing.assert_close(_features(fresh, paired.inputs), features, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{what}: after a safetensors round trip the features differ: {m}")
    _check_gradients(backbone, paired.inputs, what)  # last: a train-mode pass moves BatchNorm statistics
    return paired


def _check_layer_groups(backbone: Backbone, what: str) -> None:
    groups = backbone.layer_groups()
    assert groups and all(isinstance(g, LayerGroup) for g in groups), \
        f"{what}: layer_groups() must return a non-empty list of ft.LayerGroup"
    names = [g.name for g in groups]
    assert len(set(names)) == len(names), f"{what}: layer group names repeat: {names}"
    seen: dict[int, str] = {}
    for g in groups:
        for p in g.params:
            assert id(p) not in seen, f"{what}: a parameter is in layer groups {seen[id(p)]!r} and {g.name!r}"
            seen[id(p)] = g.name
    missing = [n for n, p in backbone.named_parameters() if id(p) not in seen]
    assert not missing, f"{what}: parameters in no layer group (no freeze strategy would see them): " \
                        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
    extra = set(seen) - {id(p) for p in backbone.parameters()}
    assert not extra, f"{what}: layer groups hold {len(extra)} tensors that are not parameters of the backbone"


def _check_gradients(backbone: Backbone, inputs, what: str) -> None:
    backbone.train()
    with kit.step(what, "a backward pass through its features"):
        backbone(inputs).float().sum().backward()
    assert any(p.grad is not None for p in backbone.parameters()) or not list(backbone.parameters()), \
        f"{what}: no parameter gets a gradient from the features"
    backbone.zero_grad(set_to_none=True)
    backbone.eval()


def _rebuild(registry: Registry, paired: kit.Paired, folder: Path, load_pretrained: bool, seed: int) -> Backbone:
    spec = registry.get("ft_backbones", paired.backbone_name)
    seed_everything(seed)
    model = spec.build(kit.validate(spec, "backbone", paired.backbone_options, folder),
                       kit.ctx(folder, paired.task, load_pretrained, seed))
    model.bind_data(paired.bundle.task, paired.bundle.info)
    return model


def _features(backbone: Backbone, inputs) -> torch.Tensor:
    backbone.eval()
    with torch.no_grad():
        return backbone(inputs)


# -- heads -----------------------------------------------------------------------


def check_head(name: str, options: dict | None = None) -> None:
    """Check the head ``name`` (``options`` default to ``{}``) for each task
    it declares; see the module docstring."""
    with kit.workdir(None) as folder:
        _check_head(get_registry(), name, options, folder)


def _check_head(registry: Registry, name: str, options: dict | None, folder: Path) -> None:
    what = kit.label(registry, "ft_heads", name)
    spec = kit.spec_of(registry, "ft_heads", name)
    options = options or {}
    kit.check_unknown_key(spec, "head", options, folder, what)
    with kit.step(what, "validating its options"):
        validated = kit.validate(spec, "head", options, folder)
    for task_type in spec.tasks:
        where = f"{what} for task {task_type!r}"
        plugin = registry.provider("ft_heads", name)
        if task_type in kit.STANDARD_TASKS and not kit.own_format_for(registry, plugin, task_type):
            task = kit.kit_task(task_type)
            features, targets = kit.blobs(task_type, 24, seed=1, dim=12)
        else:  # features of a real backbone on data of the task (the head's own plugin's first)
            with kit.step(where, "finding a backbone and dataset format with samples for the task"):
                paired = kit.find_pair(registry, folder, task=task_type, prefer=plugin)
            task, features, targets = paired.bundle.task, paired.features, paired.targets
        with kit.step(where, "building it"):
            seed_everything(0)
            head = spec.build(validated, features.shape[1], task, kit.ctx(folder, task_type))
        assert isinstance(head, Head), f"{where}: build returned {type(head).__name__}, not an ft.Head"
        _check_evaluator(head, features, targets, where)  # untrained: imperfect outputs tell halves apart
        _check_head_training(head, features, targets, where)


def _check_head_training(head: Head, features: torch.Tensor, targets, where: str) -> None:
    head.train()
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05) if list(head.parameters()) else None
    losses = []
    with kit.step(where, "computing its loss and training on one batch"):
        for _ in range(15):
            loss = head.loss(head(features), targets)
            assert isinstance(loss, torch.Tensor) and loss.dim() == 0, \
                f"{where}: loss must be a scalar tensor, got {getattr(loss, 'shape', type(loss).__name__)}"
            assert torch.isfinite(loss), f"{where}: the loss is {loss.item()}"
            losses.append(loss.item())
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    if optimizer is not None:
        assert losses[-1] < losses[0], f"{where}: the loss did not fall over 15 steps on one batch: {losses}"


def _check_evaluator(head: Head, features: torch.Tensor, targets, where: str) -> None:
    head.eval()
    with torch.no_grad(), kit.step(where, "evaluating with its evaluator"):
        outputs = head(features)
        whole = head.evaluator()
        whole.update(outputs, targets)
        metrics = whole.compute()
        assert isinstance(metrics, dict) and all(isinstance(v, (int, float)) for v in metrics.values()), \
            f"{where}: evaluator.compute() must return a dict of floats, got {metrics!r}"
        if head.default_metric != "loss":
            assert head.default_metric in metrics, \
                f"{where}: default_metric {head.default_metric!r} is not among its metrics {sorted(metrics)}"
        undeclared = sorted(set(metrics) - set(getattr(whole, "higher_is_better", {})))
        assert not undeclared, (f"{where}: the evaluator computes {undeclared} but does not declare their direction "
                                f"in higher_is_better (best-model tracking needs it)")
        if whole.mergeable:
            # noisy outputs, split unevenly: the two parts' metrics differ, so a merge that drops or
            # double-counts a part shows (the evaluator only accumulates, it never asks where outputs came from)
            noise = torch.randn(outputs.shape, generator=torch.Generator().manual_seed(0)).to(outputs)
            outputs = outputs + noise * (outputs.std() + 1)
            whole = head.evaluator()
            whole.update(outputs, targets)
            metrics = whole.compute()
            cut = max(1, len(targets) // 3)
            first, second = head.evaluator(), head.evaluator()
            first.update(outputs[:cut], targets[:cut])
            second.update(outputs[cut:], targets[cut:])
            first.merge(second.to_cpu())
            merged = first.compute()
            assert merged.keys() == metrics.keys(), f"{where}: merged metrics {sorted(merged)} != {sorted(metrics)}"
            for key, value in metrics.items():
                other = merged[key]
                same = (value != value and other != other) or abs(other - value) <= 1e-6 * max(1.0, abs(value))
                assert same, f"{where}: evaluator merge is wrong: {key} of two merged halves is {other}, " \
                             f"of the whole {value} (every state in `sums` must be additive)"
        predictions = head.predict(outputs, top_k=2)
    assert isinstance(predictions, list) and len(predictions) == len(outputs), \
        f"{where}: predict() must return one list per example ({len(outputs)}), got {type(predictions).__name__}"
    for row in predictions:
        assert all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in row), \
            f"{where}: predict() rows must be lists of (label, score) pairs, got {row!r}"


# -- freeze strategies ---------------------------------------------------------------


def check_freeze_strategy(name: str, options: dict | None = None) -> None:
    """Check the freeze strategy ``name`` on the kit's MLP; see the module docstring."""
    with kit.workdir(None) as folder:
        _check_freeze_strategy(get_registry(), name, options, folder)


def _kit_model(seed: int = 0) -> FtModel:
    torch.manual_seed(seed)
    return FtModel(kit.KitBackbone(), kit.KitHead(8, kit.kit_task("classification")), kit.kit_task("classification"))


def _check_freeze_strategy(registry: Registry, name: str, options: dict | None, folder: Path) -> dict:
    what = kit.label(registry, "ft_freeze_strategies", name)
    spec = kit.spec_of(registry, "ft_freeze_strategies", name)
    options = kit.fill_required(spec.options, options or {})
    kit.check_unknown_key(spec, "freeze", options, folder, what)

    def build() -> FreezeStrategy:
        with kit.step(what, "building it"):
            strategy = spec.build(kit.validate(spec, "freeze", options, folder), kit.ctx(folder, "classification"))
        assert isinstance(strategy, FreezeStrategy), f"{what}: build returned {type(strategy).__name__}"
        return strategy

    twins = [_kit_model(), _kit_model()]
    with kit.step(what, "apply()"):
        for model in twins:
            seed_everything(0)
            build().apply(model)
    shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in twins]
    assert shapes[0] == shapes[1], f"{what}: apply() on two identical models gave different structures"

    model, strategy, bundle = _kit_model(), build(), kit.kit_bundle("classification")
    trainer = Trainer(model, bundle.train, bundle.val, strategy=strategy, data=bundle, quiet=True,
                      train={"epochs": 2, "batch_size": 16, "progress": False, "device": "cpu", "num_workers": 0,
                             "checkpoint": False, "cache_features": False},
                      optim={"lr": 0.05, "schedule": "constant", "weight_decay": 0.0})
    untouched = {id(p): p.detach().clone() for p in model.parameters()}  # before apply() and prepare()
    with kit.step(what, "setting up the trainer (apply, prepare, param_groups)"):
        trainer.setup()
    _check_param_groups(strategy, model, what)
    before = {n: (untouched.get(id(p), p.detach().clone()), p.requires_grad) for n, p in model.named_parameters()}
    with kit.step(what, "training two epochs with ft.Trainer"):
        trainer.fit()
    frozen_moved = [n for n, (v, grad) in before.items()
                    if not grad and not torch.equal(v, dict(model.named_parameters())[n].detach())]
    assert not frozen_moved, f"{what}: frozen parameters changed in training: {', '.join(frozen_moved[:5])}"
    moved = [n for n, (v, grad) in before.items() if grad and not torch.equal(v, dict(model.named_parameters())[n])]
    assert moved, f"{what}: no trainable parameter changed in two epochs of training"
    _check_export(strategy, model, bundle, what)
    return {"frozen": sum(1 for _, g in before.values() if not g), "moved": len(moved)}


def _check_param_groups(strategy: FreezeStrategy, model: nn.Module, what: str) -> None:
    with kit.step(what, "param_groups()"):
        groups = strategy.param_groups(model)
    assert groups and all(isinstance(g, ParamGroup) for g in groups), \
        f"{what}: param_groups() must return a non-empty list of ft.ParamGroup"
    names = [g.name for g in groups]
    assert len(set(names)) == len(names), f"{what}: param group names repeat: {names}"
    ids = [id(p) for g in groups for p in g.params]
    assert len(set(ids)) == len(ids), f"{what}: a parameter is in two param groups"
    left_out = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in set(ids)]
    assert not left_out, f"{what}: trainable parameters in no param group (never updated): {', '.join(left_out[:5])}"
    for g in groups:
        with kit.step(what, f"lr_multiplier({g.name!r})"):
            mult = strategy.lr_multiplier(g.name, Progress(0, 0, 4))
        assert isinstance(mult, (int, float)) and mult >= 0, f"{what}: lr_multiplier({g.name!r}) is {mult!r}"


def _check_export(strategy: FreezeStrategy, model: FtModel, bundle: DataBundle, what: str) -> None:
    inputs = bundle.val.tensors[0]
    model.eval()
    with torch.no_grad():
        expected = model(inputs)
        with kit.step(what, "export()"):
            exported = strategy.export(model)
            assert isinstance(exported, nn.Module), f"{what}: export() returned {type(exported).__name__}"
            exported.eval()
            torch.testing.assert_close(exported(inputs), expected, rtol=1e-4, atol=1e-4,
                                       msg=lambda m: f"{what}: the exported model's outputs differ: {m}")


# -- dataset formats ---------------------------------------------------------------


def check_dataset_format(name: str, options: dict | None = None, folder: Path | None = None) -> None:
    """Check the dataset format ``name`` on ``options`` (default: its
    ``sample`` written under ``folder``); see the module docstring."""
    with kit.workdir(folder) as work:
        _check_dataset_format(get_registry(), name, options, work)


def _check_dataset_format(registry: Registry, name: str, options: dict | None, folder: Path) -> kit.Paired:
    what = kit.label(registry, "ft_dataset_formats", name)
    spec = kit.spec_of(registry, "ft_dataset_formats", name)
    if options is None:
        if spec.sample is None:
            raise AssertionError(f"{what}: no options given and the spec has no sample")
        with kit.step(what, "sample()"):
            options = spec.sample(folder / "data" / name)
        assert isinstance(options, dict), f"{what}: sample() must return the [data] options as a dict"
    kit.check_unknown_key(spec, "data", options, folder, what)
    task = spec.tasks[0]
    if spec.check is not None:
        with kit.step(what, "check()"):
            description = spec.check(kit.validate(spec, "data", options, folder), kit.ctx(folder, task))
        assert isinstance(description, str) and description.strip(), \
            f"{what}: check() must return a one-line description, got {description!r}"
    with kit.step(what, "building it with a backbone and reading a batch"):
        paired = kit.find_pair(registry, folder, fmt=name, data_options=options, task=task)
    bundle = paired.bundle
    assert isinstance(bundle, DataBundle), f"{what}: build returned {type(bundle).__name__}, not an ft.DataBundle"
    assert len(bundle.train) > 0, f"{what}: the training split is empty"
    assert isinstance(bundle.task, TaskInfo) and bundle.task.type == task, \
        f"{what}: built for task {task!r}, its task is {getattr(bundle.task, 'type', bundle.task)!r}"
    assert bundle.task.num_outputs >= 1, f"{what}: the task has {bundle.task.num_outputs} outputs"
    _check_missing_path(spec, options, paired.backbone, folder, task, what)
    return paired


def _check_missing_path(spec, options: dict, backbone: Backbone, folder: Path, task: str, what: str) -> None:
    """Each path option pointed at a missing file must give an FtError."""
    paths = [k for k, v in options.items() if isinstance(v, (str, Path)) and str(v).strip()
             and (Path(v) if Path(v).is_absolute() else folder / v).exists()]
    for key in paths:
        broken = {**options, key: str(folder / "no-such-dir" / Path(options[key]).name)}
        try:
            opts = kit.validate(spec, "data", broken, folder)
            if spec.check is not None:
                spec.check(opts, kit.ctx(folder, task))
            spec.build(opts, backbone, kit.ctx(folder, task))
        except FtError:
            continue
        except Exception as exc:
            raise AssertionError(f"{what}: data.{key} naming a missing file raised {type(exc).__name__}: {exc} "
                                 f"instead of an ft.FtError (use ft.specs.ExistingPath, or raise DataError)") from exc
        raise AssertionError(f"{what}: data.{key} naming a missing file was accepted")


# -- a whole plugin ------------------------------------------------------------------


def check_plugin(distribution: str, folder: Path | None = None) -> dict:
    """Check every component the installed distribution ``distribution``
    registers through its ``ft`` entry points and train each in a two-step
    ``ft.run``. Returns ``{kind: {name: "ok" | why it was skipped}}``."""
    registry = get_registry()
    wanted = _normalize(distribution)
    records = [r for r in registry.records.values() if _normalize(r.distribution) == wanted]
    if not records:
        dists = sorted({_normalize(ep.dist.name) for ep in metadata.entry_points(group="ft") if ep.dist})
        raise AssertionError(f"distribution {distribution!r} registers no ft plugin that is loaded (distributions "
                             f"with ft entry points: {', '.join(dists) or 'none'}); is it installed?")
    failed = [f"plugin {r.name}: {r.error}" for r in records if r.status == "failed"]
    assert not failed, f"distribution {distribution!r}: plugins failed to load: " + "; ".join(failed)
    report: dict[str, dict[str, str]] = {}
    with kit.workdir(folder) as work, kit.kit_registered(registry):
        for record in records:
            for kind, names in record.provides.items():
                for name in names:
                    slot = work / kind.replace(" ", "_") / name
                    report.setdefault(kind, {})[name] = _check_component(registry, kind, name, slot)
    return report


def _normalize(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def _check_component(registry: Registry, kind: str, name: str, folder: Path) -> str:
    """Check one component and train it in a two-step run: "ok" or why it was skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "backbone":
        if registry.get("ft_backbones", name).sample_options is None:
            return "skipped: no sample_options (check it with check_backbone(name, options))"
        paired = _check_backbone(registry, name, None, folder)
        _two_steps(registry, folder, what=kit.label(registry, "ft_backbones", name), paired=paired)
    elif kind == "dataset format":
        if registry.get("ft_dataset_formats", name).sample is None:
            return "skipped: no sample (check it with check_dataset_format(name, options))"
        paired = _check_dataset_format(registry, name, None, folder)
        _two_steps(registry, folder, what=kit.label(registry, "ft_dataset_formats", name), paired=paired)
    elif kind == "head":
        spec = registry.get("ft_heads", name)
        _check_head(registry, name, None, folder)
        task = spec.tasks[0]
        plugin = registry.provider("ft_heads", name)
        paired = None if task in kit.STANDARD_TASKS and not kit.own_format_for(registry, plugin, task) else \
            kit.find_pair(registry, folder, task=task, prefer=plugin)
        _two_steps(registry, folder, what=kit.label(registry, "ft_heads", name), paired=paired, head=name, task=task)
    elif kind == "freeze strategy":
        spec = registry.get("ft_freeze_strategies", name)
        _check_freeze_strategy(registry, name, None, folder)
        _two_steps(registry, folder, what=kit.label(registry, "ft_freeze_strategies", name),
                   strategy={"strategy": name, **kit.fill_required(spec.options, {})})
    elif kind == "recipe section":
        spec = registry.get("ft_recipe_sections", name)
        kit.check_unknown_key(spec, name, {}, folder, kit.label(registry, "ft_recipe_sections", name))
    elif kind == "logger":
        _check_logger(registry, name, folder)
    return "ok"


def _check_logger(registry: Registry, name: str, folder: Path) -> None:
    """A logger's options refuse unknown keys, and a two-step run with it on
    (every event, ``ft_step_end`` each step) finishes: it writes and raises
    nothing it should not."""
    from .events import LIFECYCLE

    spec = registry.get("ft_loggers", name)
    what = kit.label(registry, "ft_loggers", name)
    kit.check_unknown_key(spec, f"log.{name}", {}, folder, what)
    options = kit.validate(spec, f"log.{name}", kit.fill_required(spec.options, {}), folder)
    logger = spec.build(options, kit.ctx(folder, "classification"))
    if not any(callable(getattr(logger, hook, None)) for hook in LIFECYCLE):
        raise AssertionError(f"{what}: build() returned {type(logger).__name__}, which has none of the lifecycle "
                             f"methods ({', '.join(LIFECYCLE)}), so it would never record anything")
    _two_steps(registry, folder, what=what, log={"backends": [name], name: kit.fill_required(spec.options, {})})


def _two_steps(registry: Registry, folder: Path, *, what: str, paired: kit.Paired | None = None,
               head: str | None = None, task: str = "classification", strategy: dict | None = None,
               log: dict | None = None) -> None:
    """A two-step ``ft.run`` of the paired backbone and format (default: the
    kit's), with ``head`` (default: one of the backbone's plugin for the task)."""
    from .engine import run

    if paired is not None:
        task = paired.task
        data = {"format": paired.format_name, **paired.data_options}
        backbone = {"name": paired.backbone_name, **paired.backbone_options}
    else:
        data, backbone = {"format": kit.KIT_FORMAT}, {"name": kit.KIT_BACKBONE}
    head = head or _head_for(registry, task, registry.provider("ft_backbones", backbone["name"]))
    recipe = {"task": {"type": task}, "data": data, "backbone": backbone, "head": {"type": head},
              "freeze": strategy or {"strategy": "ft_kit_full"},
              "optim": {"lr": 1e-3, "schedule": "constant"},
              "train": {"epochs": 1, "max_steps": 2, "batch_size": 4, "progress": False, "device": "cpu",
                        "num_workers": 0, "seed": 0},
              "output": {"dir": str(folder / "run")}}
    if log:
        recipe["log"] = log
        recipe["train"]["log_every"] = 1
    with kit.step(what, f"a two-step ft.run ({backbone['name']} on {data['format']}, head {head})"):
        result = run(recipe, quiet=True)
    assert result.summary.get("steps", 0) >= 1, f"{what}: the two-step run made no optimizer step"
    assert (Path(result.run_dir) / "summary.json").exists(), f"{what}: the run directory has no summary.json"


def _head_for(registry: Registry, task: str, prefer: str) -> str:
    heads = [(e.plugin != prefer, e.plugin == kit.KIT_PLUGIN, name) for name, e in registry.entries["ft_heads"].items()
             if task in getattr(e.spec, "tasks", ())]
    if not heads:
        raise AssertionError(f"no registered head serves task {task!r}")
    return sorted(heads)[0][2]
