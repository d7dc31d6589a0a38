"""From a recipe to a finished run directory: assemble, train, evaluate.

Data flow: recipe -> backbone -> data (with the backbone's preprocessing,
which also tells the task: classes, outputs) -> head -> freeze strategy ->
trainer -> run directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import default_collate

from ._registry import Registry, get_registry
from .checkpoint import (latest_checkpoint, load_run_weights, load_weights, save_state_dict, save_weights,
                         write_json_atomic)
from .contracts import Backbone, BuildContext, DataBundle, Head, TaskInfo
from .distributed import Distributed, get_distributed
from .errors import FtError
from .freezing import FreezeStrategy, apply_strategy, parameter_table
from .model import FtModel
from .parallel import full_state_dict, is_sharded, resolve_device
from .recipe import Recipe, load_recipe
from .rundir import environment, latest_run_dir, new_run_dir, plot_curves, write_model_card, write_summary
from .trainer import Trainer, seed_everything


@dataclass
class Result:
    """What :func:`run` returns: final metrics per split, the run directory,
    the trained model (best weights loaded) and the summary."""

    metrics: dict[str, dict[str, float]]
    run_dir: Path
    model: FtModel
    summary: dict = field(default_factory=dict)
    recipe: Recipe | None = None


class HookRelay:
    """Forwards the trainer's lifecycle events to every registered plugin."""

    def __init__(self, registry: Registry):
        self.hook = registry.hook

    def ft_run_start(self, run) -> None:
        self.hook.ft_run_start(run=run)

    def ft_epoch_end(self, run, epoch, metrics) -> None:
        self.hook.ft_epoch_end(run=run, epoch=epoch, metrics=metrics)

    def ft_checkpoint_saved(self, run, path, epoch) -> None:
        self.hook.ft_checkpoint_saved(run=run, path=path, epoch=epoch)

    def ft_run_end(self, run, summary) -> None:
        self.hook.ft_run_end(run=run, summary=summary)


def _ctx(recipe: Recipe, load_pretrained: bool) -> BuildContext:
    return BuildContext(recipe_dir=str(recipe.recipe_dir), load_pretrained=load_pretrained, seed=recipe.train.seed,
                        task_type=recipe.task.type, epochs=recipe.train.epochs, max_steps=recipe.train.max_steps)


def build_backbone(recipe: Recipe, registry: Registry | None = None, load_pretrained: bool = True) -> Backbone:
    registry = registry or get_registry()
    spec = registry.get("ft_backbones", recipe.backbone.name)
    return spec.build(recipe.backbone.options, _ctx(recipe, load_pretrained))


def build_data(recipe: Recipe, backbone: Backbone, registry: Registry | None = None) -> DataBundle:
    registry = registry or get_registry()
    spec = registry.get("ft_dataset_formats", recipe.data.name)
    bundle = spec.build(recipe.data.options, backbone, _ctx(recipe, True))
    if len(bundle.train) == 0:
        raise FtError("the training split is empty", where=f"data ({recipe.data.name})")
    if bundle.task.type != recipe.task.type:
        raise FtError(f"data format {recipe.data.name!r} produced a {bundle.task.type!r} task "
                      f"but task.type is {recipe.task.type!r}")
    return bundle


def build_head(recipe: Recipe, feature_dim: int, task: TaskInfo, registry: Registry | None = None) -> Head:
    registry = registry or get_registry()
    spec = registry.get("ft_heads", recipe.head.name)
    return spec.build(recipe.head.options, feature_dim, task, _ctx(recipe, True))


def build_strategy(recipe: Recipe, registry: Registry | None = None) -> FreezeStrategy:
    registry = registry or get_registry()
    spec = registry.get("ft_freeze_strategies", recipe.freeze.name)
    return spec.build(recipe.freeze.options, _ctx(recipe, True))


def assemble(recipe: Recipe, registry: Registry | None = None, *, load_pretrained: bool = True,
             task: TaskInfo | None = None, data_info: dict | None = None
             ) -> tuple[FtModel, DataBundle | None, FreezeStrategy]:
    """Backbone, data (unless ``task`` and the saved ``data_info`` are
    given), head, strategy."""
    registry = registry or get_registry()
    backbone = build_backbone(recipe, registry, load_pretrained)
    bundle = None
    if task is None:
        bundle = build_data(recipe, backbone, registry)
        task = bundle.task
        backbone.bind_data(task, bundle.info)
    else:
        backbone.bind_data(task, data_info or {})
    if not isinstance(getattr(backbone, "feature_dim", None), int):
        raise FtError(f"backbone {recipe.backbone.name!r} has no integer feature_dim",
                      where=f"plugin {registry.provider('ft_backbones', recipe.backbone.name)}")
    head = build_head(recipe, backbone.feature_dim, task, registry)
    return FtModel(backbone, head, task), bundle, build_strategy(recipe, registry)


def build_model(recipe: Recipe | str | Path | Mapping, overrides: Mapping | None = None) -> FtModel:
    """The model a recipe describes (pretrained backbone + new head), untrained.

    The data is read to learn the task (number of classes); the freeze
    strategy is not applied.
    """
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    model, _, _ = assemble(recipe)
    return model


def _run_dir_for(recipe: Recipe, resume: bool | str | Path) -> Path:
    """The run directory to write (or resume): rank 0 decides, nobody else creates one."""
    if isinstance(resume, (str, Path)) and not isinstance(resume, bool):
        path = Path(resume)
        if latest_checkpoint(path) is None:
            raise FtError("no checkpoint to resume from", where=str(path))
        return path
    if recipe.output.dir is not None:
        path = Path(recipe.output.dir)
        has_run = latest_checkpoint(path) is not None or (path / "summary.json").exists()
        if resume:
            if not has_run:
                raise FtError("no checkpoint to resume from", where=f"output.dir = {path}")
        elif has_run:
            raise FtError("the run directory already holds a run", where=f"output.dir = {path}",
                          hint="pass --resume to continue it, or choose another output.dir")
        path.mkdir(parents=True, exist_ok=True)
        return path
    if resume:
        path = latest_run_dir(recipe.output.root, recipe.name)
        if path is None:
            raise FtError(f"no earlier run of {recipe.name!r} with a checkpoint under {recipe.output.root}/",
                          hint="start the run without --resume")
        return path
    return new_run_dir(recipe.output.root, recipe.name)


def _check_can_resume(run_dir: Path) -> None:
    """Every rank reads the checkpoint it resumes from: it must see it."""
    if latest_checkpoint(run_dir) is None:
        import socket

        raise FtError(f"this node ({socket.gethostname()}) cannot see the run's checkpoint", where=str(run_dir),
                      hint="put output.root (or output.dir) on storage every node mounts at the same path "
                           "(see docs/distributed.md)")


def run(source: Recipe | str | Path | Mapping, overrides: Mapping[str, Any] | list[str] | None = None, *,
        resume: bool | str | Path = False, quiet: bool = False, callbacks: list | None = None) -> Result:
    """Train what a recipe describes and write its run directory.

    ``source`` is a TOML path, a dict or a loaded :class:`Recipe`;
    ``overrides`` maps dotted keys to values (``{"train.epochs": 3}``).
    Under ``torchrun`` every rank calls it; rank 0 writes the run directory
    and the others return the same metrics. Ctrl-C stops after the current
    step with a checkpoint and raises ``KeyboardInterrupt``.
    """
    registry = get_registry()
    recipe = source if isinstance(source, Recipe) else load_recipe(source, overrides, registry)
    dist = get_distributed(resolve_device(recipe.train.device).type)
    run_dir = dist.decide(lambda: _run_dir_for(recipe, resume))
    if resume:
        dist.agree(lambda: _check_can_resume(run_dir))
    seed_everything(recipe.train.seed)  # before anything is built: the new head starts the same every run
    model, bundle, strategy = dist.agree(lambda: assemble(recipe, registry))
    trainer = Trainer(model, bundle.train, bundle.val, train=recipe.train, optim=recipe.optim, strategy=strategy,
                      collate=model.backbone.collate(), run_dir=run_dir,
                      callbacks=[HookRelay(registry), *(callbacks or [])], recipe=recipe, data=bundle, quiet=quiet,
                      dist=dist)
    main = dist.is_main
    if main:
        (run_dir / "recipe.toml").write_text(recipe.to_toml())
        write_json_atomic(run_dir / "env.json", environment(str(trainer.device), trainer.precision,
                                                            dist.world_size, dist.backend))
        write_json_atomic(run_dir / "task.json", model.task.to_json())
        write_json_atomic(run_dir / "data.json", {"fingerprint": bundle.fingerprint, "sizes": _sizes(bundle),
                                                  **bundle.info})
    fit = trainer.fit(resume=bool(resume))
    if fit.stopped == "interrupted":
        raise KeyboardInterrupt
    _load_best(model, run_dir, dist)
    if strategy.finish(model, bundle, trainer.device):
        _save_model(model, run_dir / "best" / "model.safetensors", dist)
    t0 = time.perf_counter()
    metrics: dict[str, dict[str, float]] = {}
    for split, data in (("val", bundle.val), ("test", bundle.test)):
        if data is not None:
            metrics[split] = {k.split("_", 1)[1]: v for k, v in trainer.evaluate(data, split).items()}
    params = parameter_table(model)
    summary = {
        "recipe": recipe.name, "run_dir": str(run_dir), "metrics": metrics,
        "best_epoch": fit.best_epoch, "monitor": fit.monitor, "best_value": fit.best_value,
        "stopped": fit.stopped, "epochs_run": len(fit.history), "steps": fit.steps,
        "train_seconds": round(fit.train_seconds, 3), "eval_seconds": round(time.perf_counter() - t0, 3),
        "device": str(trainer.device), "precision": trainer.precision, "settings": fit.settings,
        "params": {"total": sum(r["trainable"] + r["frozen"] for r in params),
                   "trainable": sum(r["trainable"] for r in params), "groups": params},
        "data": _sizes(bundle),
    }
    if main:
        write_summary(run_dir, summary)
        if fit.history:
            plot_curves(fit.history, run_dir / "curves.png")
        write_model_card(run_dir, recipe.to_dict(), summary)
        trainer._emit("ft_run_end", run=trainer.info, summary=summary)
        if not quiet:
            shown = "  ".join(f"{s}_{k} {v:.4f}" for s, m in metrics.items() for k, v in m.items())
            print(f"ft: done in {fit.train_seconds:.1f} s ({fit.stopped}); {shown}\nft: run directory {run_dir}")
    dist.barrier()
    return Result(metrics, run_dir, model, summary, recipe)


def _load_best(model: FtModel, run_dir: Path, dist: Distributed) -> None:
    """The best epoch's weights into every rank's model. Rank 0 reads them
    and sends them, so the other ranks need not see the run directory."""
    best = run_dir / "best" / "model.safetensors"
    if not dist.decide(best.exists):
        return
    from safetensors.torch import load_file

    state = load_file(str(best)) if dist.is_main else {}
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True,
                                                                    broadcast_from_rank0=True, strict=False))
        return
    if dist.is_main:
        load_weights(model, best)
    dist.broadcast_tensors(list(model.state_dict().values()))


def _save_model(model: FtModel, path: Path, dist: Distributed) -> None:
    """Rank 0 writes the model (gathered first when it is sharded) atomically."""
    state = full_state_dict(model) if is_sharded(model) else None
    if dist.is_main:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        save_state_dict(state, tmp) if state is not None else save_weights(model, tmp)
        tmp.replace(path)
    dist.barrier()


def _sizes(bundle: DataBundle) -> dict[str, int]:
    return {k: len(v) for k, v in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test))
            if v is not None}


# -- using a finished run -------------------------------------------------------


@dataclass
class LoadedRun:
    """A run directory's recipe, model (trained weights loaded) and strategy."""

    recipe: Recipe
    model: FtModel
    strategy: FreezeStrategy
    run_dir: Path


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild a run's model from its resolved recipe and load its best
    weights (or, without a best model, its latest checkpoint)."""
    run_dir = Path(run_dir)
    if not (run_dir / "recipe.toml").exists():
        raise FtError("not an ft run directory (no recipe.toml)", where=str(run_dir))
    recipe = load_recipe(run_dir / "recipe.toml")
    task = TaskInfo.from_json(json.loads((run_dir / "task.json").read_text()))
    info_path = run_dir / "data.json"
    data_info = json.loads(info_path.read_text()) if info_path.exists() else {}
    model, _, strategy = assemble(recipe, load_pretrained=False, task=task, data_info=data_info)
    apply_strategy(strategy, model)
    load_run_weights(model, run_dir)
    model.eval()
    return LoadedRun(recipe, model, strategy, run_dir)


def evaluate_run(run_dir: str | Path, split: str = "test") -> dict[str, float]:
    """Metrics of a finished run's model on one of its data splits."""
    loaded = load_run(run_dir)
    bundle = build_data(loaded.recipe, loaded.model.backbone)
    data = {"train": bundle.train_eval or bundle.train, "val": bundle.val, "test": bundle.test}.get(split)
    if data is None:
        raise FtError(f"the data has no {split!r} split", where=str(run_dir), hint="try --split val or --split test")
    trainer = Trainer(loaded.model, bundle.train, None, train=loaded.recipe.train, optim=loaded.recipe.optim,
                      strategy=_KeepAsIs(), collate=loaded.model.backbone.collate(), quiet=True)
    return {k.split("_", 1)[1]: v for k, v in trainer.evaluate(data, split).items()}


class _KeepAsIs(FreezeStrategy):
    """Evaluation only: leave requires_grad and the model as loaded."""

    name = "as-loaded"

    def apply(self, model) -> None:
        pass


def export_run(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a run's model for inference: the strategy's export (LoRA merged
    into the base weights) as a directory that is itself a loadable run
    (``ft eval``/``ft predict``/``ft.load_run`` work on it)."""
    import shutil

    loaded = load_run(run_dir)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FtError("the export folder is not empty", where=str(out), hint="choose a new folder")
    exported = loaded.strategy.export(loaded.model)
    recipe = loaded.recipe.to_dict()
    if set(exported.state_dict()) != set(loaded.model.state_dict()):
        recipe["freeze"] = {"strategy": "full"}  # the structure is plain again (adapters merged)
    (out / "best").mkdir(parents=True, exist_ok=True)
    save_weights(exported, out / "best" / "model.safetensors")
    import tomli_w

    (out / "recipe.toml").write_text(tomli_w.dumps(recipe))
    for name in ("task.json", "data.json", "MODEL_CARD.md", "summary.json"):
        if (loaded.run_dir / name).exists():
            shutil.copy2(loaded.run_dir / name, out / name)
    write_json_atomic(out / "export.json", {"source": str(Path(run_dir).resolve()),
                                            "strategy": loaded.recipe.freeze.name,
                                            "merged": recipe["freeze"]["strategy"] != loaded.recipe.freeze.name})
    return out


@torch.no_grad()
def predict_run(run_dir: str | Path, inputs: list[str], top_k: int = 3) -> list[list[tuple[str, float]]]:
    """Top predictions for raw inputs (paths or texts) with a run's model."""
    loaded = load_run(run_dir)
    registry = get_registry()
    spec = registry.get("ft_dataset_formats", loaded.recipe.data.name)
    if spec.read_input is None:
        raise FtError(f"data format {loaded.recipe.data.name!r} does not support predicting from raw inputs",
                      where=f"plugin {registry.provider('ft_dataset_formats', loaded.recipe.data.name)}")
    backbone = loaded.model.backbone
    examples = [(spec.read_input(raw, loaded.recipe.data.options, backbone), 0) for raw in inputs]
    batch_inputs, _ = (backbone.collate() or default_collate)(examples)
    outputs = loaded.model(batch_inputs)
    return loaded.model.head.predict(outputs.float(), top_k=top_k)
