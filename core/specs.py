"""Registration specs: what a plugin's registration hooks return.

Each spec is a name, a ``build`` function and a pydantic model for its recipe
options. Options models should forbid unknown keys (inherit
:class:`Options`) so a typo in a recipe is caught with a "did you mean".
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, WrapValidator


class Options(BaseModel):
    """Base for plugin option models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


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


def require(module: str, extra: str) -> None:
    """Raise ImportError naming the pip extra if ``module`` is not installed.

    Call at a plugin module's top level: cheap (no import), and the error is
    shown by ``ft plugins`` instead of surfacing mid-run.
    """
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{module} is not installed; install it with: pip install 'ftkit[{extra}]'")


@dataclass(frozen=True)
class BackboneSpec:
    """``build(options, ctx) -> ft.Backbone``."""

    name: str
    build: Callable[..., Any]
    options: type[BaseModel] = NoOptions
    description: str = ""


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
    ``read_input(raw, options, backbone) -> inputs`` for ``ft predict``."""

    name: str
    build: Callable[..., Any]
    options: type[BaseModel] = NoOptions
    read_input: Callable[..., Any] | None = None
    tasks: tuple[str, ...] = ("classification", "multilabel", "regression")
    description: str = ""


@dataclass(frozen=True)
class SectionSpec:
    """A plugin's own top-level recipe section, validated by ``options``."""

    name: str
    options: type[BaseModel]
    description: str = ""


#: registration hook name -> (kind shown to users, recipe key that selects it)
KINDS: dict[str, tuple[str, str]] = {
    "ft_backbones": ("backbone", "backbone.name"),
    "ft_heads": ("head", "head.type"),
    "ft_freeze_strategies": ("freeze strategy", "freeze.strategy"),
    "ft_dataset_formats": ("dataset format", "data.format"),
    "ft_recipe_sections": ("recipe section", "[section]"),
}

SPEC_TYPES: dict[str, type] = {
    "ft_backbones": BackboneSpec,
    "ft_heads": HeadSpec,
    "ft_freeze_strategies": FreezeStrategySpec,
    "ft_dataset_formats": DatasetFormatSpec,
    "ft_recipe_sections": SectionSpec,
}

__all__ = [
    "Options", "NoOptions", "RecipePath", "ExistingPath", "require", "BackboneSpec", "HeadSpec",
    "FreezeStrategySpec", "DatasetFormatSpec", "SectionSpec", "KINDS", "SPEC_TYPES", "field",
]
