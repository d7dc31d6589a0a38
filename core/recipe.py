"""Recipes: TOML in, a typed and fully validated :class:`Recipe` out.

Core sections are validated here; the options inside ``[data]``,
``[backbone]``, ``[head]`` and ``[freeze]`` by the plugin that owns the
selected name; extra top-level sections by the plugin that registered them.
Every error names the file, the dotted key, what was expected and what was
found. Nothing trains before the whole recipe, paths included, is valid.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, Field, ValidationError, field_validator

from .errors import RecipeError, did_you_mean
from .specs import KINDS, Options, RecipePath

CORE_SECTIONS = ("task", "data", "backbone", "head", "freeze", "optim", "train", "output")
#: section -> (selector key, registration hook, default name)
COMPONENTS = {
    "data": ("format", "ft_dataset_formats", None),
    "backbone": ("name", "ft_backbones", None),
    "head": ("type", "ft_heads", "linear"),
    "freeze": ("strategy", "ft_freeze_strategies", "full"),
}


class TaskSection(Options):
    """``[task]``: what is predicted."""

    type: str = Field("classification", description="classification | multilabel | regression | a plugin's task")


class OptimSection(Options):
    """``[optim]``: optimizer and learning-rate schedule."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0, description="off for biases and norm weights")
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    momentum: float = Field(0.9, ge=0, description="SGD only")
    nesterov: bool = False
    fused: Literal["auto"] | bool = Field("auto", description="fused/foreach AdamW where available")
    head_lr_mult: float = Field(1.0, gt=0, description="head learning rate = lr * head_lr_mult")
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="used when warmup_steps is 0")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="floor of cosine/linear decay, as a fraction of lr")


class TrainSection(Options):
    """``[train]``: the loop."""

    epochs: int = Field(10, ge=1, description="maximum epochs")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    time_limit: float | None = Field(None, gt=0, description="stop after this many seconds (checked per step)")
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    clip_grad_norm: float | None = Field(None, gt=0)
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="average the weights over steps (e.g. 0.998); validation, best/ and the "
                                      "final model use the average")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N (cuda: this rank's GPU, cuda:LOCAL_RANK)")
    precision: Literal["auto", "fp32", "bf16", "fp16", "fp64"] = Field(
        "auto", description="auto: bf16 on CUDA that supports it, fp32 on CPU; fp64: float64 everywhere, slow, for "
                            "checking numerics")
    channels_last: bool = False
    compile: bool = False
    tf32: bool = Field(True, description="CUDA: TF32 matmuls and convolutions (float32 range, 10-bit mantissa)")
    cudnn_benchmark: bool = Field(True, description="CUDA: autotune convolution algorithms per input shape")
    activation_checkpointing: bool = Field(
        False, description="recompute the backbone's activations in backward: less memory, ~1/3 more compute")
    seed: int = 0
    num_workers: Literal["auto"] | int = Field(
        "auto", description="loader worker processes; auto: 0 on CPU, on CUDA the cores per local rank less "
                                  "one, at most 8")
    persistent_workers: bool = Field(True, description="keep loader workers alive between epochs")
    prefetch_factor: int | None = Field(None, ge=1, description="batches each worker loads ahead (torch: 2)")
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp", description="several ranks: ddp (a model copy per rank) or fsdp (FSDP2: parameters, gradients and "
                           "optimizer state sharded)")
    sync_batchnorm: bool = Field(False, description="several ranks: BatchNorm statistics over the global batch")
    ddp_static_graph: bool = Field(False, description="DDP: the set of used parameters never changes between steps")
    ddp_bucket_cap_mb: float | None = Field(None, gt=0, description="DDP: gradient bucket size (torch: 25)")
    ddp_find_unused_parameters: bool = Field(False, description="DDP: the forward may skip parameters")
    fsdp_reshard_after_forward: bool = Field(
        True, description="FSDP: free gathered weights after forward (less memory, one more gather in backward)")
    monitor: str | None = Field(None, description="metric for best model / early stopping, e.g. val_accuracy")
    monitor_mode: Literal["auto", "max", "min"] = "auto"
    patience: int | None = Field(None, ge=1, description="early stopping: epochs without improvement")
    checkpoint: bool = True
    keep_checkpoints: int = Field(2, ge=1)
    cache_features: Literal["auto"] | bool = Field(
        "auto", description="train the head on cached features while the backbone is frozen")
    feature_cache_on_disk: bool = Field(False, description="also keep cached features in <run>/cache/")
    log_every: int = Field(50, ge=1, description="steps between progress lines when not on a terminal")
    progress: Literal["auto"] | bool = "auto"

    @field_validator("num_workers", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError('expected "auto" or a whole number >= 0')


class OutputSection(Options):
    """``[output]``: where the run directory goes."""

    dir: RecipePath | None = Field(None, description="run directory; default <root>/<recipe>-<timestamp>")
    root: str = "runs"


@dataclass
class Component:
    """A plugin-provided part chosen by name, with its validated options."""

    name: str
    options: BaseModel
    plugin: str = ""


@dataclass
class Recipe:
    """A validated recipe. ``to_dict()`` is the resolved form (defaults in)."""

    name: str
    path: Path | None
    task: TaskSection
    data: Component
    backbone: Component
    head: Component
    freeze: Component
    optim: OptimSection
    train: TrainSection
    output: OutputSection
    sections: dict[str, BaseModel] = field(default_factory=dict)

    @property
    def recipe_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"task": self.task.model_dump(mode="json")}
        for section in ("data", "backbone", "head", "freeze"):
            comp: Component = getattr(self, section)
            key = COMPONENTS[section][0]
            out[section] = {key: comp.name, **comp.options.model_dump(mode="json", exclude_none=True)}
        out["optim"] = self.optim.model_dump(mode="json", exclude_none=True)
        out["train"] = self.train.model_dump(mode="json", exclude_none=True)
        out["output"] = self.output.model_dump(mode="json", exclude_none=True)
        for name, model in self.sections.items():
            out[name] = model.model_dump(mode="json", exclude_none=True)
        return out

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


# -- overrides --------------------------------------------------------------


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)``; the value is read as TOML when it
    parses (numbers, booleans, arrays, quoted strings), else as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"cannot read override {text!r}", where="--set",
                          hint="write --set section.key=value, e.g. --set train.epochs=3")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_overrides(data: dict, overrides: Mapping[str, Any] | None) -> dict:
    """Set dotted keys in a nested dict (copied), creating tables as needed."""
    out = _deepcopy(data)
    for dotted, value in (overrides or {}).items():
        parts = dotted.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"cannot set {dotted!r}: {'.'.join(parts[:i + 1])!r} is a value, not a table",
                                  where="--set")
            node = child
        node[parts[-1]] = value
    return out


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


# -- loading and validation ---------------------------------------------------


def read_toml(path: Path) -> dict:
    if not path.exists():
        raise RecipeError("recipe file not found", where=str(path), hint="check the path (relative to the current folder)")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"not valid TOML: {exc}", where=str(path)) from None


def load_recipe(source: str | Path | Mapping, overrides: Mapping[str, Any] | list[str] | None = None,
                registry=None) -> Recipe:
    """Read, override and validate a recipe (a TOML path or a dict)."""
    from ._registry import get_registry

    registry = registry or get_registry()
    if isinstance(overrides, (list, tuple)):
        overrides = dict(parse_override(o) for o in overrides)
    if isinstance(source, Mapping):
        path, raw, name = None, dict(source), "recipe"
    else:
        path = Path(source)
        raw, name = read_toml(path), path.stem
    raw = apply_overrides(raw, overrides)
    return validate_recipe(raw, name=name, path=path, registry=registry, overridden=set(overrides or {}))


def validate_recipe(raw: dict, *, name: str, path: Path | None, registry, overridden: set[str] = frozenset()) -> Recipe:
    where_file = str(path) if path else "recipe"
    ctx = {"recipe_dir": str(path.parent.resolve() if path else Path.cwd())}
    errors: list[str] = []

    def fail(key: str, message: str, hint: str | None = None) -> None:
        origin = " (from --set)" if key in overridden else ""
        errors.append(f"{key}{origin}: {message}" + (f" — {hint}" if hint else ""))

    sections = {spec.name: spec for spec in (e.spec for e in registry.entries["ft_recipe_sections"].values())}
    for key, value in raw.items():
        if key not in CORE_SECTIONS and key not in sections:
            fail(key, "unknown section", did_you_mean(key, [*CORE_SECTIONS, *sections]))
        elif not isinstance(value, dict):
            fail(key, f"expected a table [{key}], found {type(value).__name__} {value!r}")

    def section(key: str) -> dict:
        value = raw.get(key, {})
        return value if isinstance(value, dict) else {}

    task = _validate_model(TaskSection, section("task"), "task", ctx, fail)
    optim = _validate_model(OptimSection, section("optim"), "optim", ctx, fail)
    train = _validate_model(TrainSection, section("train"), "train", ctx, fail)
    output = _validate_model(OutputSection, section("output"), "output", ctx, fail)

    components: dict[str, Component | None] = {}
    for sec, (selector, hook, default) in COMPONENTS.items():
        body = dict(section(sec))
        chosen = body.pop(selector, default)
        if chosen is None:
            fail(f"{sec}.{selector}", "missing", f"name a registered {sec} (see `ft plugins`)")
            components[sec] = None
            continue
        if not isinstance(chosen, str):
            fail(f"{sec}.{selector}", f"expected a name (string), found {chosen!r}")
            components[sec] = None
            continue
        entry = registry.entries[hook].get(chosen)
        if entry is None:
            hint = did_you_mean(chosen, registry.entries[hook]) or "see `ft plugins`"
            failed = [r.name for r in registry.records.values() if r.status == "failed"]
            if failed:
                hint += f" (plugins that failed to load: {', '.join(failed)}; run `ft plugins`)"
            fail(f"{sec}.{selector}", f"unknown {KINDS[hook][0]} {chosen!r}", hint)
            components[sec] = None
            continue
        spec = entry.spec
        opts = _validate_model(spec.options, body, sec, ctx, fail, owner=f"{sec} {chosen!r} (plugin {entry.plugin})")
        if task is not None and hasattr(spec, "tasks") and task.type not in spec.tasks:
            fail(f"{sec}.{selector}", f"{sec} {chosen!r} does not support task.type {task.type!r}",
                 f"it supports: {', '.join(spec.tasks)}")
        components[sec] = Component(chosen, opts, entry.plugin) if opts is not None else None

    extra_sections: dict[str, BaseModel] = {}
    for key, spec in sections.items():
        if key in raw and isinstance(raw[key], dict):
            model = _validate_model(spec.options, raw[key], key, ctx, fail)
            if model is not None:
                extra_sections[key] = model

    if errors:
        raise RecipeError("invalid recipe:\n  " + "\n  ".join(errors), where=where_file)
    registry.check()
    return Recipe(name, path.resolve() if path else None, task, components["data"], components["backbone"],
                  components["head"], components["freeze"], optim, train, output, extra_sections)


def _validate_model(model: type[BaseModel], body: dict, section: str, ctx: dict, fail, owner: str | None = None):
    try:
        return model.model_validate(body, context=ctx)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            key = f"{section}.{loc}" if loc else section
            if err["type"] == "extra_forbidden":
                hint = did_you_mean(str(err["loc"][-1]), model.model_fields)
                where = f" for {owner}" if owner else ""
                fail(key, f"unknown key{where}", hint or f"known keys: {', '.join(model.model_fields) or 'none'}")
            elif err["type"] == "missing":
                fail(key, "missing (required)")
            else:
                found = err.get("input")
                # a message that already quotes the value (a path that does not exist) says it once
                said = isinstance(found, str) and len(found) > 2 and found in err["msg"]
                shown = "" if said else f"; found {found!r}"
                fail(key, f"{err['msg']}{shown}")
        return None
