"""Registration specs: what a plugin's registration hooks return.

Each spec is a name, a ``build`` function and a pydantic model for its recipe
options. Options models should forbid unknown keys (inherit
:class:`Options`) so a typo in a recipe is caught with a "did you mean".
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, WrapValidator, field_validator


class Options(BaseModel):
    """Base for plugin option models: unknown keys are errors, and so are
    inf/NaN where a number goes and ``true``/``false`` where a number goes
    (pydantic would read ``epochs = true`` as 1)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        field_info = cls.model_fields.get(info.field_name) if info.field_name else None
        if field_info is None or _allows_bool(field_info.annotation):
            return value
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, bool) for v in items):
            raise ValueError(f"expected {_expected(field_info.annotation)}, found a boolean")
        return value


def _allows_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    return any(_allows_bool(arg) for arg in get_args(annotation))


def _expected(annotation: Any) -> str:
    names = {getattr(a, "__name__", str(a)) for a in (annotation, *get_args(annotation))}
    return "a whole number" if "int" in names and "float" not in names else "a number" \
        if names & {"int", "float"} else "a value of the documented type"


class NoOptions(Options):
    """For components that take no options."""


def _resolve_path(value: Any, handler, info: ValidationInfo) -> Path:
    path = Path(handler(value)).expanduser()
    base = (info.context or {}).get("recipe_dir")
    if not path.is_absolute() and base:
        path = Path(base) / path
    return path


def _must_exist(path: Path) -> Path:
    if not path.exists():
        raise ValueError(f"path does not exist: {path}")
    return path


#: A path option resolved against the recipe file's folder.
RecipePath = Annotated[Path, WrapValidator(_resolve_path)]
#: A path option resolved against the recipe file's folder that must exist.
ExistingPath = Annotated[Path, WrapValidator(_resolve_path), AfterValidator(_must_exist)]


def require(module: str, extra: str | None = None, *, distribution: str | None = None) -> None:
    """Raise ImportError saying what to ``pip install`` if ``module`` is not installed.

    Call at a plugin module's top level: cheap (no import), and the error is
    shown by ``ft plugins`` instead of surfacing mid-run. The advice names
    the plugin's own distribution: ``distribution`` if given, else the one
    whose ``ft`` entry point (or, failing that, whose files) holds the
    calling module's package: ``pip install 'DISTRIBUTION[EXTRA]'``, or,
    without ``extra`` (the distribution has no extra that brings
    ``module``), ``pip install MODULE``. A built-in plugin is told
    ``pip install 'ftkit[EXTRA]'``; a third-party one its own name, never
    ftkit's.
    """
    if importlib.util.find_spec(module) is not None:
        return
    if distribution is None:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        distribution = _distribution_of(caller)
    if extra and distribution:
        advice = f"pip install '{distribution}[{extra}]'"
    else:
        advice = f"pip install {module}" + (f" (needed by {distribution})" if distribution else "")
    raise ImportError(f"{module} is not installed; install it with: {advice}")


def _distribution_of(module_name: str) -> str | None:
    """The installed distribution that provides the module ``module_name``:
    the one whose ``ft`` entry point names it (or its package), else the one
    whose files hold its top-level package; None if none does."""
    from importlib import metadata

    top = module_name.split(".")[0]
    eps = [ep for ep in metadata.entry_points(group="ft") if ep.dist is not None]
    for same in (lambda m: m == module_name, lambda m: m.split(".")[0] == top):  # the exact module first
        for ep in eps:
            if same(ep.module):
                return ep.dist.name
    found = metadata.packages_distributions().get(top)
    return found[0] if found else None


@dataclass(frozen=True)
class BackboneSpec:
    """``build(options, ctx) -> ft.Backbone``. ``sample_options``: the
    ``[backbone]`` options (without ``name``) of a small instance that builds
    offline, used by the conformance kit :mod:`ft.testing` (None: the kit
    cannot build one on its own and skips the backbone)."""

    name: str
    build: Callable[..., Any]
    options: type[BaseModel] = NoOptions
    description: str = ""
    sample_options: dict | None = None


@dataclass(frozen=True)
class HeadSpec:
    """``build(options, feature_dim, task, ctx) -> ft.Head``."""

    name: str
    build: Callable[..., Any]
    options: type[BaseModel] = NoOptions
    tasks: tuple[str, ...] = ("classification", "multilabel", "regression")
    description: str = ""


@dataclass(frozen=True)
class FreezeStrategySpec:
    """``build(options, ctx) -> ft.FreezeStrategy``."""

    name: str
    build: Callable[..., Any]
    options: type[BaseModel] = NoOptions
    description: str = ""


@dataclass(frozen=True)
class DatasetFormatSpec:
    """``build(options, backbone, ctx) -> ft.DataBundle``;
    ``read_input(raw, options, backbone) -> inputs`` for ``ft predict``;
    ``check(options, ctx) -> str``: a cheap look at the data before any
    model is built (header, columns, label column, a sample of rows,
    referenced files exist), used by ``ft validate`` and at the start of
    ``ft run``. It raises :class:`ft.DataError` naming the file (and
    ``line N`` of it, or ``row N`` of the data) and returns a one-line
    description (``"1,696 train / 352 val clips, 8 classes"``).
    ``sample(folder) -> dict`` writes a tiny data set of this format (for the
    first of ``tasks``) under ``folder`` and returns its ``[data]`` options
    (without ``format``); the conformance kit :mod:`ft.testing` trains on it."""

    name: str
    build: Callable[..., Any]
    options: type[BaseModel] = NoOptions
    read_input: Callable[..., Any] | None = None
    tasks: tuple[str, ...] = ("classification", "multilabel", "regression")
    description: str = ""
    check: Callable[..., str | None] | None = None
    sample: Callable[[Path], dict] | None = None


@dataclass(frozen=True)
class SectionSpec:
    """A plugin's own top-level recipe section, validated by ``options``."""

    name: str
    options: type[BaseModel]
    description: str = ""


@dataclass(frozen=True)
class LoggerSpec:
    """``build(options, ctx) -> logger``: an object with any of the lifecycle
    hook methods (``ft_run_start``, ``ft_step_end``, ``ft_epoch_end``,
    ``ft_checkpoint_saved``, ``ft_run_end``), as a Python callback has. A
    recipe turns it on with ``[log] backends = ["NAME"]`` (or ``ft run
    --log NAME``) and configures it in ``[log.NAME]``, validated by
    ``options``. Loggers receive the events on rank 0 only. ``build`` must
    be cheap and write nothing: open files or connections in
    ``ft_run_start``."""

    name: str
    build: Callable[..., Any]
    options: type[BaseModel] = NoOptions
    description: str = ""


#: registration hook name -> (kind shown to users, recipe key that selects it)
KINDS: dict[str, tuple[str, str]] = {
    "ft_backbones": ("backbone", "backbone.name"),
    "ft_heads": ("head", "head.type"),
    "ft_freeze_strategies": ("freeze strategy", "freeze.strategy"),
    "ft_dataset_formats": ("dataset format", "data.format"),
    "ft_recipe_sections": ("recipe section", "[section]"),
    "ft_loggers": ("logger", "log.backends"),
}

SPEC_TYPES: dict[str, type] = {
    "ft_backbones": BackboneSpec,
    "ft_heads": HeadSpec,
    "ft_freeze_strategies": FreezeStrategySpec,
    "ft_dataset_formats": DatasetFormatSpec,
    "ft_recipe_sections": SectionSpec,
    "ft_loggers": LoggerSpec,
}

__all__ = [
    "Options", "NoOptions", "RecipePath", "ExistingPath", "require", "BackboneSpec", "HeadSpec",
    "FreezeStrategySpec", "DatasetFormatSpec", "SectionSpec", "LoggerSpec", "KINDS", "SPEC_TYPES", "field",
]
