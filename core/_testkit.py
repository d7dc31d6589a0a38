"""Machinery of :mod:`ft.testing`: the kit's own tiny components, option
validation as a recipe does it, finding data a backbone can take, and
turning a plugin's exception into an ``AssertionError`` that names it.

The kit's components (an MLP backbone ``ft_kit_mlp`` on Gaussian blobs
``ft_kit_blobs``, a linear classification head) let a freeze strategy or a
head be checked, and trained with ``ft.run``, without any domain plugin.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn
from torch.utils.data import TensorDataset

import ft

from ._registry import Registry
from .contracts import Backbone, BuildContext, DataBundle, Evaluator, Head, TaskInfo, groups_by_prefix
from .data import make_loader
from .errors import FtError, RecipeError
from .metrics import ClassificationEvaluator, MultilabelEvaluator, RegressionEvaluator
from .recipe import _validate_model
from .freezing import FreezeStrategy
from .specs import KINDS, BackboneSpec, DatasetFormatSpec, FreezeStrategySpec, HeadSpec, Options
from .trainer import seed_everything

STANDARD_TASKS = ("classification", "multilabel", "regression")
KIT_PLUGIN, KIT_BACKBONE, KIT_FORMAT = "ft-testing-kit", "ft_kit_mlp", "ft_kit_blobs"
KIT_HEAD, KIT_FULL = "ft_kit_linear", "ft_kit_full"
IN_DIM, N_OUT = 8, 3
UNKNOWN_KEY = "ft_kit_no_such_option"


# -- naming and errors ---------------------------------------------------------


def label(registry: Registry, hook: str, name: str) -> str:
    """``backbone 'timm' (plugin vision, distribution ftkit)``."""
    kind = KINDS[hook][0]
    entry = registry.entries[hook].get(name)
    return f"{kind} {name!r} (plugin {entry.plugin}, distribution {entry.distribution})" if entry else \
        f"{kind} {name!r}"


def spec_of(registry: Registry, hook: str, name: str) -> Any:
    """The registered spec, or an AssertionError with the registry's message."""
    try:
        return registry.get(hook, name)
    except FtError as exc:
        raise AssertionError(str(exc)) from None


@contextlib.contextmanager
def step(what: str, doing: str) -> Iterator[None]:
    """Turn any exception but an AssertionError into one naming ``what``
    and the step that broke (the original stays chained)."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as exc:
        shown = exc.message if isinstance(exc, FtError) else str(exc)
        raise AssertionError(f"{what}: {doing} failed: {type(exc).__name__}: {shown}") from exc


@contextlib.contextmanager
def workdir(folder: Path | None) -> Iterator[Path]:
    """``folder`` (created), or a temporary folder removed afterwards."""
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        yield Path(folder)
        return
    with tempfile.TemporaryDirectory(prefix="ft-testing-") as tmp:
        yield Path(tmp)


# -- options -------------------------------------------------------------------


def validate(spec: Any, section: str, body: dict, folder: Path) -> BaseModel:
    """``body`` validated by ``spec.options`` as a recipe in ``folder``
    would be: a :class:`RecipeError` naming each bad key."""
    errors: list[str] = []

    def fail(key: str, message: str, hint: str | None = None) -> None:
        errors.append(f"{key}: {message}" + (f" — {hint}" if hint else ""))

    options = _validate_model(spec.options, dict(body), section, {"recipe_dir": str(folder)}, fail,
                              owner=f"{section} {spec.name!r}")
    if errors:
        raise RecipeError("invalid options:\n  " + "\n  ".join(errors), where=f"[{section}] of {spec.name!r}")
    return options


def check_unknown_key(spec: Any, section: str, body: dict, folder: Path, what: str) -> None:
    """An unknown option key must be a RecipeError that names it."""
    try:
        validate(spec, section, {**body, UNKNOWN_KEY: 1}, folder)
    except RecipeError as exc:
        if UNKNOWN_KEY not in str(exc):
            raise AssertionError(f"{what}: an unknown option key gives an error that does not name it: {exc}")
        return
    except Exception as exc:
        raise AssertionError(f"{what}: an unknown option key raised {type(exc).__name__}: {exc} instead of a "
                             f"RecipeError naming it (inherit ft.specs.Options)") from exc
    raise AssertionError(f"{what}: the unknown option key {UNKNOWN_KEY!r} was accepted: its options model must "
                         f"forbid unknown keys (inherit ft.specs.Options)")


def fill_required(model: type[BaseModel], body: dict) -> dict:
    """``body`` plus 1 for each required whole-number or number option it
    lacks (``freeze_bottom``'s ``n``): the smallest sensible choice."""
    out = dict(body)
    for key, field in model.model_fields.items():
        if field.is_required() and key not in out and field.annotation in (int, float):
            out[key] = 1
    return out


def ctx(folder: Path, task_type: str, load_pretrained: bool = True, seed: int = 0) -> BuildContext:
    return BuildContext(recipe_dir=str(folder), load_pretrained=load_pretrained, seed=seed, task_type=task_type,
                        epochs=1, max_steps=2)


# -- data a backbone can take ----------------------------------------------------


@dataclass
class Paired:
    """A backbone built on a dataset format's sample, with one batch through it."""

    backbone_name: str
    backbone_options: dict
    format_name: str
    data_options: dict
    task: str
    backbone: Backbone
    bundle: DataBundle
    inputs: Any
    targets: Any
    features: torch.Tensor


def first_batch(bundle: DataBundle, backbone: Backbone, size: int = 6) -> tuple[Any, Any]:
    data = bundle.train_eval if bundle.train_eval is not None else bundle.train
    loader = make_loader(data, batch_size=min(size, len(data)), train=False, collate=backbone.collate())
    return next(iter(loader))


def build_pair(registry: Registry, backbone: str, backbone_options: dict, fmt: str, data_options: dict,
               task: str, folder: Path) -> Paired:
    """Build ``backbone`` (seed 0) and ``fmt``'s data for ``task``, bind
    them and run one batch through the backbone in eval mode."""
    bspec, dspec = registry.get("ft_backbones", backbone), registry.get("ft_dataset_formats", fmt)
    bopts = validate(bspec, "backbone", backbone_options, folder)
    dopts = validate(dspec, "data", data_options, folder)
    seed_everything(0)
    model = bspec.build(bopts, ctx(folder, task))
    bundle = dspec.build(dopts, model, ctx(folder, task))
    model.bind_data(bundle.task, bundle.info)
    inputs, targets = first_batch(bundle, model)
    model.eval()
    with torch.no_grad():
        features = model(inputs)
    return Paired(backbone, backbone_options, fmt, data_options, task, model, bundle, inputs, targets, features)


def candidates(registry: Registry, hook: str, prefer: str, task: str | None = None) -> list[str]:
    """Names registered for ``hook`` with a sample: ``prefer``'s plugin first, the kit's last."""
    names = []
    for name, entry in registry.entries[hook].items():
        spec = entry.spec
        has = spec.sample_options is not None if hook == "ft_backbones" else spec.sample is not None
        if has and (task is None or task in getattr(spec, "tasks", (task,))):
            names.append((entry.plugin != prefer, entry.plugin == KIT_PLUGIN, name))
    return [n for *_, n in sorted(names)]


def find_pair(registry: Registry, folder: Path, *, backbone: str | None = None, backbone_options: dict | None = None,
              fmt: str | None = None, data_options: dict | None = None, task: str | None = None,
              prefer: str | None = None) -> Paired:
    """The first backbone x dataset-format pairing (fixing whichever is
    given; the fixed one's own plugin tried first) that builds and runs."""
    fixed_hook = "ft_backbones" if backbone else "ft_dataset_formats"
    if prefer is None:
        prefer = registry.provider(fixed_hook, backbone or fmt) if (backbone or fmt) else ""
    formats = [fmt] if fmt else candidates(registry, "ft_dataset_formats", prefer, task)
    backbones = [backbone] if backbone else candidates(registry, "ft_backbones", prefer)
    tried = []
    for f in formats:
        fspec = registry.get("ft_dataset_formats", f)
        t = task or fspec.tasks[0]
        try:
            dopts = data_options if data_options is not None else fspec.sample(folder / "data" / f)
        except Exception as exc:
            tried.append(f"the sample of {f}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            continue
        for b in backbones:
            bopts = backbone_options if backbone_options is not None else \
                registry.get("ft_backbones", b).sample_options
            try:
                return build_pair(registry, b, bopts, f, dopts, t, folder)
            except Exception as exc:  # not this pairing: try the next, report all if none works
                tried.append(f"{b} on {f} ({t}): {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}")
    raise AssertionError("no backbone x dataset format pairing builds and runs"
                         + ("; tried:\n  " + "\n  ".join(tried) if tried else
                            " (no dataset format or backbone with a sample / sample_options is registered)"))


# -- the kit's own components ----------------------------------------------------


class KitBackbone(Backbone):
    """embed (Linear + BatchNorm) -> block (Linear) -> out (Linear + LayerNorm):
    three layer groups, biases, BatchNorm and nn.Linear layers, so every
    kind of freeze strategy has something to act on."""

    def __init__(self, width: int = 16, feature_dim: int = 8):
        super().__init__()
        self.feature_dim = feature_dim
        self.embed = nn.Sequential(nn.Linear(IN_DIM, width), nn.BatchNorm1d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(width, feature_dim), nn.LayerNorm(feature_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(self.embed(x)))

    def layer_groups(self):
        return groups_by_prefix(self, [("embed", ["embed"]), ("block", ["block"]), ("out", ["out"])])


class KitHead(Head):
    """One linear layer for the standard tasks."""

    def __init__(self, feature_dim: int, task: TaskInfo):
        super().__init__()
        self.linear = nn.Linear(feature_dim, task.num_outputs)
        self.task = task

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.task.type == "classification":
            return F.cross_entropy(outputs, targets.long())
        if self.task.type == "multilabel":
            return F.binary_cross_entropy_with_logits(outputs, targets.float())
        return F.mse_loss(outputs.reshape(targets.shape), targets.float())

    def evaluator(self) -> Evaluator:
        return {"classification": lambda: ClassificationEvaluator(self.task.num_outputs),
                "multilabel": lambda: MultilabelEvaluator(self.task.num_outputs)}.get(
            self.task.type, RegressionEvaluator)()

    def predict(self, outputs: torch.Tensor, top_k: int = 3) -> list[list[tuple[str, float]]]:
        return [[(str(i), float(v)) for v, i in zip(*row.topk(min(top_k, row.numel())))] for row in outputs]


def own_format_for(registry: Registry, plugin: str, task: str) -> bool:
    """Whether ``plugin`` registers a dataset format with a sample that serves ``task``."""
    return any(e.plugin == plugin and e.spec.sample is not None and task in e.spec.tasks
               for e in registry.entries["ft_dataset_formats"].values())


def kit_task(task_type: str) -> TaskInfo:
    outputs = 1 if task_type == "regression" else N_OUT
    return TaskInfo(task_type, outputs, tuple(f"class_{i}" for i in range(outputs)))


def blobs(task_type: str, n: int, seed: int = 0, dim: int = IN_DIM) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable Gaussian blobs: inputs ``[n, dim]`` and targets for ``task_type``."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(N_OUT, dim, generator=g) * 2.0
    labels = torch.arange(n) % N_OUT
    x = centers[labels] + 0.5 * torch.randn(n, dim, generator=g)
    if task_type == "classification":
        return x, labels
    if task_type == "multilabel":
        return x, torch.stack([labels == 0, labels != 1, labels == 2], 1).float()
    return x, labels.float() + 0.1 * torch.randn(n, generator=g)


def kit_bundle(task_type: str, n: int = 96, seed: int = 0) -> DataBundle:
    x, y = blobs(task_type, n, seed)
    a, b = n * 2 // 3, n * 5 // 6
    train, val, test = (TensorDataset(x[s], y[s]) for s in (slice(0, a), slice(a, b), slice(b, n)))
    return DataBundle(train, val, test, kit_task(task_type), train_eval=train, unlabeled=test,
                      fingerprint=f"ft-kit-{task_type}-{n}-{seed}")


class KitBackboneOptions(Options):
    width: int = Field(16, ge=2)
    feature_dim: int = Field(8, ge=2)


class KitDataOptions(Options):
    n: int = Field(96, ge=12)
    seed: int = 0


class KitPlugin:
    """Registers the kit's backbone and dataset format (for ``ft.run``)."""

    @ft.hookimpl
    def ft_backbones(self) -> list:
        return [BackboneSpec(KIT_BACKBONE, lambda o, c: KitBackbone(o.width, o.feature_dim), KitBackboneOptions,
                             description="ft.testing's tiny MLP", sample_options={})]

    @ft.hookimpl
    def ft_heads(self) -> list:
        return [HeadSpec(KIT_HEAD, lambda o, dim, task, c: KitHead(dim, task), tasks=STANDARD_TASKS,
                         description="ft.testing's linear head")]

    @ft.hookimpl
    def ft_freeze_strategies(self) -> list:
        return [FreezeStrategySpec(KIT_FULL, lambda o, c: FreezeStrategy(), description="everything trains")]

    @ft.hookimpl
    def ft_dataset_formats(self) -> list:
        return [DatasetFormatSpec(KIT_FORMAT, lambda o, b, c: kit_bundle(c.task_type, o.n, o.seed), KitDataOptions,
                                  description="ft.testing's Gaussian blobs", sample=lambda folder: {})]


@contextlib.contextmanager
def kit_registered(registry: Registry) -> Iterator[None]:
    """The kit's components registered in ``registry`` for the duration."""
    here = KIT_PLUGIN in registry.records and registry.records[KIT_PLUGIN].status == "ok"
    if not here:
        registry.register(KitPlugin(), KIT_PLUGIN)
    try:
        yield
    finally:
        if not here:
            registry.unregister(KIT_PLUGIN)
