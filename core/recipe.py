"""Recipes: TOML in, a typed and fully validated :class:`Recipe` out.

Core sections are validated here; the options inside ``[data]``,
``[backbone]``, ``[head]`` and ``[freeze]`` by the plugin that owns the
selected name; extra top-level sections by the plugin that registered them.
Every error names the file, the dotted key, what was expected and what was
found. Nothing trains before the whole recipe, paths included, is valid.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import BaseModel, Field, ValidationError, field_validator

from .errors import FtError, RecipeError, did_you_mean
from .specs import KINDS, Options, RecipePath
from .sweep_space import SweepSettings, SweepSpace, parse_params

CORE_SECTIONS = ("task", "data", "backbone", "head", "freeze", "optim", "train", "output", "log", "sweep")
#: section -> (selector key, registration hook, default name)
COMPONENTS = {
    "data": ("format", "ft_dataset_formats", None),
    "backbone": ("name", "ft_backbones", None),
    "head": ("type", "ft_heads", "linear"),
    "freeze": ("strategy", "ft_freeze_strategies", "full"),
}
#: what ``train.device`` accepts
DEVICE_FORMS = "auto | cpu | cuda | cuda:N | mps"
_DEVICE = re.compile(r"auto|cpu|cuda|cuda:\d+|mps")
#: bytes no TOML file contains (control characters other than tab, newline, carriage return)
_BINARY_BYTES = frozenset(range(0, 9)) | {11, 12} | frozenset(range(14, 32)) | {127}


class TaskSection(Options):
    """``[task]``: what is predicted."""

    type: str = Field("classification", description="classification | multilabel | regression | a plugin's task")


class OptimSection(Options):
    """``[optim]``: optimizer and learning-rate schedule."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0, description="off for biases and norm weights")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
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
    max_nonfinite_steps: int = Field(
        10, ge=0, description="optimizer steps in a row with a NaN/inf loss or gradient that are skipped (and "
                              "counted) before the run stops with an error; 0: stop at the first")
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="average the weights over steps (e.g. 0.998); validation, best/ and the "
                                      "final model use the average")
    device: str = Field("auto", description=f"{DEVICE_FORMS} (auto: this rank's GPU if there is one, else the "
                                            "CPU; cuda: this rank's GPU, cuda:LOCAL_RANK; mps: Apple GPU)")
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
    log_every: int = Field(50, ge=1, description="optimizer steps between ft_step_end events (what loggers record "
                                                 "per step) and between progress lines when not on a terminal")
    progress: Literal["auto"] | bool = "auto"

    @field_validator("num_workers", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError('expected "auto" or a whole number >= 0')

    @field_validator("device")
    @classmethod
    def _device_form(cls, value: str) -> str:
        if _DEVICE.fullmatch(value):
            return value
        raise ValueError(f"{value!r} is not a device; expected one of {DEVICE_FORMS} (N: a GPU number, e.g. cuda:0)")


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
class LogSection:
    """``[log]``: the experiment loggers that record the run.

    ``backends`` names the loggers that run, in order; ``[log.NAME]``
    configures the logger ``NAME`` (a table for a logger that is not in
    ``backends`` is validated and kept, so ``ft run --log NAME`` finds it).
    ``loggers`` maps every named or configured logger to its options."""

    backends: list[str] = field(default_factory=list)
    loggers: dict[str, Component] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"backends": list(self.backends)}
        for name, comp in self.loggers.items():
            out[name] = comp.options.model_dump(mode="json", exclude_none=True)
        return out


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
    log: LogSection = field(default_factory=LogSection)
    #: ``[sweep]``: what ``ft sweep`` searches (``ft run`` keeps it in recipe.toml and otherwise ignores it)
    sweep: SweepSpace | None = None

    @property
    def recipe_dir(self) -> Path:
        """The folder relative paths in the recipe are read against (the current folder for a dict)."""
        return self.path.parent if self.path else Path.cwd()

    def to_dict(self) -> dict:
        """The resolved recipe: every section with its defaults filled in, as plain TOML-able values."""
        out: dict[str, Any] = {"task": self.task.model_dump(mode="json")}
        for section in ("data", "backbone", "head", "freeze"):
            comp: Component = getattr(self, section)
            key = COMPONENTS[section][0]
            out[section] = {key: comp.name, **comp.options.model_dump(mode="json", exclude_none=True)}
        out["optim"] = self.optim.model_dump(mode="json", exclude_none=True)
        out["train"] = self.train.model_dump(mode="json", exclude_none=True)
        out["output"] = self.output.model_dump(mode="json", exclude_none=True)
        if self.log.backends or self.log.loggers:
            out["log"] = self.log.to_dict()
        for name, model in self.sections.items():
            out[name] = model.model_dump(mode="json", exclude_none=True)
        if self.sweep is not None:
            out["sweep"] = self.sweep.to_dict()
        return out

    def to_toml(self) -> str:
        """:meth:`to_dict` as TOML text (what a run writes as recipe.toml)."""
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


def apply_overrides(data: dict, overrides: Mapping[str, Any] | None, origins: Mapping[str, str] | None = None) -> dict:
    """Set dotted keys in a nested dict (copied), creating tables as needed.
    ``origins`` maps a dotted key to how it was given (``--set a.b=1``), for
    the error message."""
    out = _deepcopy(data)
    for dotted, value in (overrides or {}).items():
        parts = dotted.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"cannot set {dotted!r}: {'.'.join(parts[:i + 1])!r} is a value ({child!r}), "
                                  "not a table", where=(origins or {}).get(dotted, "--set"),
                                  hint="an override names one key: section.key=value, e.g. --set train.epochs=3")
            node = child
        node[parts[-1]] = value
    return out


def _override_origins(overrides: Mapping[str, Any] | list[str] | tuple | None) -> tuple[dict[str, Any], dict[str, str]]:
    """``(dotted key -> value, dotted key -> how it was given)`` of ``--set``
    texts or a Python mapping of overrides."""
    if isinstance(overrides, (list, tuple)):
        parsed = [(parse_override(text), text) for text in overrides]
        return {k: v for (k, v), _ in parsed}, {k: f"--set {text}" for (k, _), text in parsed}
    overrides = dict(overrides or {})
    return overrides, {k: f"override {k}={v!r}" for k, v in overrides.items()}


def _blame(key: str, message: str, origins: Mapping[str, str]) -> tuple[str, str]:
    """``(label, message)`` for an error at ``key`` that overrides caused:
    ``key (from --set)``, and, when the override named another key (``--set
    a.b.c.d=1`` explains an error at ``a``), the override as it was given."""
    given = {dotted: text for dotted, text in origins.items()
             if dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + ".")}
    if not given:
        return key, message
    kinds = sorted({text.split(" ", 1)[0] for text in given.values()})
    others = [text for dotted, text in given.items() if dotted != key]
    return f"{key} (from {', '.join(kinds)})", message + (f" (given as {', '.join(others)})" if others else "")


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


# -- loading and validation ---------------------------------------------------


def read_toml(path: Path) -> dict:
    """The table of a TOML recipe file. A missing file, a folder, a binary
    file, text that is not UTF-8 or malformed TOML is a :class:`RecipeError`
    naming the file and what to do."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.toml"))
        raise RecipeError("this is a folder, not a recipe file", where=str(path),
                          hint=f"give one of its recipes: {', '.join(inside[:6])}" if inside
                          else "give the path of a .toml recipe file")
    if not path.exists():
        raise RecipeError("recipe file not found", where=str(path), hint="check the path (relative to the current folder)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecipeError(f"cannot read the recipe file: {exc.strerror or exc}", where=str(path),
                          hint="check that the file is readable by you") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RecipeError("the recipe is UTF-16 text; TOML files are UTF-8", where=str(path),
                          hint="save it as UTF-8 (in most editors: Save As, encoding UTF-8)")
    if _BINARY_BYTES.intersection(data[:8192]):
        raise RecipeError("this is a binary file, not a TOML recipe", where=str(path),
                          hint="give the recipe's .toml text file")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark some editors write
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise RecipeError(f"the recipe is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} is not UTF-8 "
                          "(TOML files are UTF-8; this one looks saved as Latin-1 or another legacy encoding)",
                          where=f"{path}: line {line}",
                          hint=f"save it as UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name} > fixed.toml") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"not valid TOML: {exc}", where=str(path)) from None


def load_recipe(source: str | Path | Mapping, overrides: Mapping[str, Any] | list[str] | None = None,
                registry=None, loggers: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe (a TOML path or a dict).
    ``loggers`` adds logger names to ``log.backends`` (``ft run --log NAME``)."""
    from ._registry import get_registry

    registry = registry or get_registry()
    overrides, origins = _override_origins(overrides)
    if isinstance(source, Mapping):
        path, raw, name = None, dict(source), "recipe"
    else:
        path = Path(source)
        raw, name = read_toml(path), path.stem
    raw = apply_overrides(raw, overrides, origins)
    if loggers:
        raw = add_loggers(raw, loggers)
        origins = {**origins, "log.backends": "--log " + " --log ".join(loggers)}
    return validate_recipe(raw, name=name, path=path, registry=registry, overridden=origins)


def add_loggers(raw: dict, loggers: list[str] | tuple[str, ...]) -> dict:
    """A copy of a recipe's table with ``loggers`` added to ``log.backends``
    (those already named stay where they are)."""
    out = dict(raw)
    log = dict(out["log"]) if isinstance(out.get("log"), dict) else {}
    named = log.get("backends", [])
    named = list(named) if isinstance(named, list) else [named]
    log["backends"] = named + [n for n in loggers if n not in named]
    out["log"] = log
    return out


def validate_recipe(raw: dict, *, name: str, path: Path | None, registry,
                    overridden: Mapping[str, str] | set[str] = frozenset()) -> Recipe:
    """Validate a recipe's table (overrides applied). ``overridden`` maps the
    overridden dotted keys to how they were given (``--set a.b=1``), so an
    error they cause says so."""
    where_file = str(path) if path else "recipe"
    ctx = {"recipe_dir": str(path.parent.resolve() if path else Path.cwd())}
    errors: list[str] = []
    origins = overridden if isinstance(overridden, Mapping) else {key: f"--set {key}=..." for key in overridden}

    def fail(key: str, message: str, hint: str | None = None) -> None:
        label, message = _blame(key, message, origins)
        errors.append(f"{label}: {message}" + (f" — {hint}" if hint else ""))

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
        clash = registry.clash(hook, chosen)
        if clash is not None:  # two plugins registered this name: only a recipe that uses it fails
            fail(f"{sec}.{selector}", clash.message, clash.hint)
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

    log = _validate_log(section("log"), registry, ctx, fail)

    extra_sections: dict[str, BaseModel] = {}
    for key, spec in sections.items():
        if key in raw and isinstance(raw[key], dict):
            clash = registry.clash("ft_recipe_sections", key)
            if clash is not None:
                fail(key, clash.message, clash.hint)
                continue
            model = _validate_model(spec.options, raw[key], key, ctx, fail)
            if model is not None:
                extra_sections[key] = model

    sweep = None
    if "sweep" in raw and isinstance(raw["sweep"], dict):
        # the searched values are tried through this same validation, once the recipe itself is sound
        sweep = _validate_sweep(raw, ctx, fail, None if errors else lambda sample: validate_recipe(
            sample, name=name, path=path, registry=registry))
    if errors:
        raise RecipeError("invalid recipe:\n  " + "\n  ".join(errors), where=where_file)
    return Recipe(name, path.resolve() if path else None, task, components["data"], components["backbone"],
                  components["head"], components["freeze"], optim, train, output, extra_sections, log, sweep)


def _validate_sweep(raw: dict, ctx: dict, fail, check) -> SweepSpace:
    """``[sweep]`` (see :mod:`ft.sweep_space`): plain keys are settings,
    dotted keys the recipe keys searched. ``check(table)`` validates the
    recipe (without ``[sweep]``) with sample values applied: each choice
    (with the conditional keys it switches on), each range's ends, a
    conditional key with its condition; so a key or value the recipe
    refuses is named here, as the recipe would name it."""
    body = raw["sweep"]
    settings = _validate_model(SweepSettings, {k: v for k, v in body.items() if "." not in k}, "sweep", ctx, fail)
    params = parse_params({k: v for k, v in body.items() if "." in k}, fail)
    space = SweepSpace(settings or SweepSettings(), params)
    if settings is not None and settings.sampler == "grid":
        try:
            space.grid()
        except FtError as exc:
            fail("sweep.sampler", exc.message, exc.hint)
    base = {k: v for k, v in raw.items() if k != "sweep"}
    problems: dict[tuple[str, str], str] = {}  # (param label, problem) -> the sample that showed it first
    for param, sample in space.samples() if check else ():
        try:
            check(apply_overrides(base, sample))
        except RecipeError as exc:
            for problem in exc.message.split("\n  ")[1:]:  # validate_recipe's one line per problem
                problems.setdefault((param.label, problem), ", ".join(f"{k} = {v!r}" for k, v in sample.items()))
    for (label, problem), tried in problems.items():
        fail(label, f"with {tried}: {problem}")
    return space


def _validate_log(body: dict, registry, ctx: dict, fail) -> LogSection:
    """``[log]``: ``backends`` names registered loggers; each ``[log.NAME]``
    table is validated by that logger's options."""
    hook = "ft_loggers"
    known = registry.entries[hook]
    backends = body.get("backends", [])
    if not isinstance(backends, list) or not all(isinstance(b, str) for b in backends):
        fail("log.backends", f"expected a list of logger names, found {backends!r}",
             'e.g. backends = ["tensorboard"]')
        backends = []
    out = LogSection(backends=list(dict.fromkeys(backends)))
    for key, value in body.items():
        if key != "backends" and not isinstance(value, dict):
            fail(f"log.{key}", f"unknown key (found {value!r})",
                 (did_you_mean(key, ["backends"]) or "[log] holds backends = [...]") + " and [log.NAME] tables "
                 "for the loggers' options")
    for name in dict.fromkeys([*out.backends, *(k for k, v in body.items() if isinstance(v, dict))]):
        clash = registry.clash(hook, name)
        if clash is not None:
            fail("log.backends", clash.message, clash.hint)
            continue
        entry = known.get(name)
        if entry is None:
            hint = did_you_mean(name, known) or f"the loggers installed: {', '.join(known) or 'none'} (ft plugins)"
            where = "log.backends" if name in out.backends else f"log.{name}"
            fail(where, f"unknown logger {name!r}", hint)
            continue
        options = _validate_model(entry.spec.options, body.get(name, {}), f"log.{name}", ctx, fail,
                                  owner=f"logger {name!r} (plugin {entry.plugin})")
        if options is not None:
            out.loggers[name] = Component(name, options, entry.plugin)
    return out


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
                fail(key, f"{err['msg'].removeprefix('Value error, ')}{shown}")
        return None
