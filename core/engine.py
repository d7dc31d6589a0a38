"""From a recipe to a finished run directory: assemble, train, evaluate.

Data flow: recipe -> backbone -> data (with the backbone's preprocessing,
which also tells the task: classes, outputs) -> head -> freeze strategy ->
trainer -> run directory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import default_collate

from ._registry import Registry, get_registry
from .checkpoint import load_run_weights, load_weights, save_weights
from .contracts import Backbone, BuildContext, DataBundle, Head, TaskInfo
from .distributed import Distributed, get_distributed
from .errors import FtError
from .files import read_json, read_safetensors, write_json_atomic
from .fingerprint import describe
from .freezing import FreezeStrategy, apply_strategy, parameter_table
from .model import FtModel
from .provenance import check_installed, plugin_step, provenance
from .parallel import is_sharded, resolve_device
from .recipe import Recipe, add_loggers, load_recipe, validate_recipe
from .report import Report, refresh_report, report_files, split_report, write_reports
from .run_plan import RunPlan, check_can_resume, plan_run_dir
from .rundir import RunDirectory, environment, new_run_dir, recorded_components
from .trainer import FitResult, Trainer, seed_everything


@dataclass
class Result:
    """What :func:`run` returns: final metrics per split, the run directory,
    the trained model (best weights loaded) and the summary."""

    metrics: dict[str, dict[str, float]]
    run_dir: Path
    model: FtModel
    summary: dict = field(default_factory=dict)
    recipe: Recipe | None = None


def _ctx(recipe: Recipe, load_pretrained: bool) -> BuildContext:
    return BuildContext(recipe_dir=str(recipe.recipe_dir), load_pretrained=load_pretrained, seed=recipe.train.seed,
                        task_type=recipe.task.type, epochs=recipe.train.epochs, max_steps=recipe.train.max_steps)


def build_backbone(recipe: Recipe, registry: Registry | None = None, load_pretrained: bool = True) -> Backbone:
    """The backbone ``backbone.name`` names, built by its plugin (see
    :func:`ft.provenance.plugin_step` for how a failing plugin is reported)."""
    registry = registry or get_registry()
    name = recipe.backbone.name
    spec = registry.get("ft_backbones", name)
    return plugin_step(registry, "ft_backbones", name, "building the backbone",
                       lambda: spec.build(recipe.backbone.options, _ctx(recipe, load_pretrained)))


def check_data(recipe: Recipe, registry: Registry | None = None) -> str | None:
    """The data format's cheap check of the recipe's data (no model built):
    its one-line description, or None if the format has no check. Raises
    :class:`DataError` naming the file and line."""
    registry = registry or get_registry()
    spec = registry.get("ft_dataset_formats", recipe.data.name)
    if spec.check is None:
        return None
    return plugin_step(registry, "ft_dataset_formats", recipe.data.name, "checking the data",
                       lambda: spec.check(recipe.data.options, _ctx(recipe, False)))


def build_data(recipe: Recipe, backbone: Backbone, registry: Registry | None = None) -> DataBundle:
    """The train/val/test data ``data.format`` reads, with the backbone's preprocessing."""
    registry = registry or get_registry()
    spec = registry.get("ft_dataset_formats", recipe.data.name)
    bundle = plugin_step(registry, "ft_dataset_formats", recipe.data.name, "reading the data",
                         lambda: spec.build(recipe.data.options, backbone, _ctx(recipe, True)))
    if len(bundle.train) == 0:
        raise FtError("the training split is empty", where=f"data ({recipe.data.name})")
    if bundle.task.type != recipe.task.type:
        raise FtError(f"data format {recipe.data.name!r} produced a {bundle.task.type!r} task "
                      f"but task.type is {recipe.task.type!r}")
    return bundle


def build_head(recipe: Recipe, feature_dim: int, task: TaskInfo, registry: Registry | None = None) -> Head:
    """The head ``head.type`` names, on ``feature_dim`` features, for ``task``."""
    registry = registry or get_registry()
    spec = registry.get("ft_heads", recipe.head.name)
    return plugin_step(registry, "ft_heads", recipe.head.name, "building the head",
                       lambda: spec.build(recipe.head.options, feature_dim, task, _ctx(recipe, True)))


def build_loggers(recipe: Recipe, registry: Registry | None = None) -> list:
    """The loggers ``[log] backends`` names, in order, built by their plugins
    with their ``[log.NAME]`` options: objects the trainer fires the
    lifecycle events to, before the Python callbacks."""
    registry = registry or get_registry()
    loggers = []
    for name in recipe.log.backends:
        spec = registry.get("ft_loggers", name)
        options = recipe.log.loggers[name].options
        loggers.append(plugin_step(registry, "ft_loggers", name, "building the logger",
                                   lambda: spec.build(options, _ctx(recipe, True))))
    return loggers


def build_strategy(recipe: Recipe, registry: Registry | None = None) -> FreezeStrategy:
    """The freeze strategy ``freeze.strategy`` names, with its options."""
    registry = registry or get_registry()
    spec = registry.get("ft_freeze_strategies", recipe.freeze.name)
    return plugin_step(registry, "ft_freeze_strategies", recipe.freeze.name, "building the freeze strategy",
                       lambda: spec.build(recipe.freeze.options, _ctx(recipe, True)))


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


def run(source: Recipe | str | Path | Mapping, overrides: Mapping[str, Any] | list[str] | None = None, *,
        resume: bool | str | Path = False, quiet: bool = False, callbacks: list | None = None,
        loggers: list[str] | tuple[str, ...] = (), test: bool = True) -> Result:
    """Train what a recipe describes and write its run directory.

    ``source`` is a TOML path, a dict or a loaded :class:`Recipe`;
    ``overrides`` maps dotted keys to values (``{"train.epochs": 3}``);
    ``loggers`` adds logger names to ``[log] backends`` (``ft run --log``).
    ``test=False`` leaves the test split unscored (a sweep's trials choose
    on validation only). Under ``torchrun`` every rank calls it; rank 0
    writes the run directory and the others return the same metrics.
    Ctrl-C stops after the current step with a checkpoint and raises
    ``KeyboardInterrupt``.
    """
    registry = get_registry()
    if isinstance(source, Recipe):
        recipe = source if not loggers else validate_recipe(add_loggers(source.to_dict(), loggers),
                                                             name=source.name, path=source.path, registry=registry)
    else:
        recipe = load_recipe(source, overrides, registry, loggers)
    dist = get_distributed(resolve_device(recipe.train.device).type)
    # nothing is written before the recipe, the plugins and the data are known good
    plan = dist.decide(lambda: plan_run_dir(recipe, resume))
    if plan.resuming:
        dist.agree(lambda: check_can_resume(plan.path))
    dist.agree(lambda: check_data(recipe, registry))
    seed_everything(recipe.train.seed)  # before anything is built: the new head starts the same every run
    model, bundle, strategy = dist.agree(lambda: assemble(recipe, registry))
    run_dir = RunDirectory(plan.path or "", main=dist.is_main)
    run_dir.path = Path(dist.decide(lambda: str(_open(run_dir, plan))))
    try:
        return _train(recipe, plan, run_dir, model, bundle, strategy, registry, dist, quiet, callbacks, test)
    finally:
        run_dir.close()


def _open(run_dir: RunDirectory, plan: RunPlan) -> Path:
    if plan.path is None:
        run_dir.path = new_run_dir(plan.root, plan.name)
    run_dir.open(fresh=not plan.resuming)
    return run_dir.path


def _train(recipe: Recipe, plan: RunPlan, run_dir: RunDirectory, model: FtModel, bundle: DataBundle,
           strategy: FreezeStrategy, registry: Registry, dist: Distributed, quiet: bool,
           callbacks: list | None, test: bool) -> Result:
    trainer = Trainer(model, bundle.train, bundle.val, train=recipe.train, optim=recipe.optim, strategy=strategy,
                      collate=model.backbone.collate(), run_dir=run_dir,
                      callbacks=[*build_loggers(recipe, registry), *(callbacks or [])],
                      registry=registry, recipe=recipe, data=bundle, quiet=quiet, dist=dist)
    main = dist.is_main
    if main and not quiet:
        if run_dir.repaired:
            print(f"ft: {run_dir.path} was left half written (a run was killed): " + "; ".join(run_dir.repaired))
        if plan.how == "restart":
            print(f"ft: {run_dir.path} has no checkpoint yet: starting it again from the beginning")
        if plan.changes:
            print(f"ft: resuming with {describe(plan.changes)} (recorded in run.json)")
    components = provenance(recipe, registry)
    run_dir.record_start(recipe, plan.data_files,
                         environment(str(trainer.device), trainer.precision, dist.world_size, dist.backend,
                                     components=components),
                         model.task.to_json(),
                         {"fingerprint": bundle.fingerprint, "sizes": _sizes(bundle), **bundle.info},
                         resumed_with=plan.changes if plan.resuming else None)

    def finish(fit: FitResult) -> dict:
        """After the last epoch, inside ``Trainer.fit``: the best weights, the
        final evaluation and the run's files; the summary ``ft_run_end`` gets."""
        _load_best(model, run_dir.path, dist)
        if strategy.finish(model, bundle, trainer.device):
            run_dir.replace_best_model(model, dist)
        t0 = time.perf_counter()
        metrics: dict[str, dict[str, float]] = {}
        reports: dict[str, Report | None] = {}
        for split, data in (("val", bundle.val), ("test", bundle.test if test else None)):
            if data is not None:
                evaluator = model.evaluator()  # kept: the split's report comes from this very pass
                metrics[split] = {k.split("_", 1)[1]: v
                                  for k, v in trainer.evaluate(data, split, evaluator=evaluator).items()}
                reports[split] = split_report(evaluator, metrics[split])
        eval_seconds = round(time.perf_counter() - t0, 3)
        # written before the card, which shows them; every rank lists the same files
        files = write_reports(run_dir.path, reports) if main else report_files(reports)
        params = parameter_table(model)
        # how training went is the bare trainer's summary; the metrics are the final evaluation's
        summary = {
            "recipe": recipe.name, "run_dir": str(run_dir.path), **fit.to_summary(), "metrics": metrics,
            "eval_seconds": eval_seconds,
            "device": str(trainer.device), "precision": trainer.precision,
            "params": {"total": sum(r["trainable"] + r["frozen"] for r in params),
                       "trainable": sum(r["trainable"] for r in params), "groups": params},
            "data": _sizes(bundle), "components": components,
            **({"report": files} if files else {}),
        }
        run_dir.finish(summary, fit.history, recipe.to_dict())
        return summary

    # Trainer.fit fires every lifecycle event, ft_run_end too, with the summary finish() returns
    fit = trainer.fit(resume=plan.resuming, summary=finish)
    if fit.stopped == "interrupted":
        raise KeyboardInterrupt
    summary = fit.summary
    if main and not quiet:
        shown = "  ".join(f"{s}_{k} {v:.4f}" for s, m in summary["metrics"].items() for k, v in m.items())
        print(f"ft: done in {fit.train_seconds:.1f} s ({fit.stopped}); {shown}\nft: run directory {run_dir.path}")
        if fit.note:  # last, where it is seen: these figures are not what the recipe promises
            print(f"ft: {fit.note}")
    dist.barrier()
    return Result(summary["metrics"], run_dir.path, model, summary, recipe)


def _load_best(model: FtModel, run_dir: Path, dist: Distributed) -> None:
    """The best epoch's weights into every rank's model. Rank 0 reads them
    and sends them, so the other ranks need not see the run directory."""
    best = run_dir / "best" / "model.safetensors"
    if not dist.decide(best.exists):
        return
    state = read_safetensors(best, "the best model") if dist.is_main else {}
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True,
                                                                    broadcast_from_rank0=True, strict=False))
        return
    if dist.is_main:
        load_weights(model, best)
    dist.broadcast_tensors(list(model.state_dict().values()))


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
    # a plugin the run used and this process lacks: name what to install, before the recipe fails on its names
    check_installed(recorded_components(run_dir), get_registry(), where=str(run_dir))
    recipe = load_recipe(run_dir / "recipe.toml")
    damaged = "the run directory is damaged: copy the file back from a backup, or train the run again"
    try:
        task = TaskInfo.from_json(read_json(run_dir / "task.json", "the run's task (classes, outputs)", damaged))
    except (KeyError, TypeError, ValueError):
        raise FtError("the run's task.json does not describe a task", where=str(run_dir / "task.json"),
                      hint=damaged) from None
    info_path = run_dir / "data.json"
    data_info = read_json(info_path, "the run's data facts", damaged) if info_path.exists() else {}
    if not isinstance(data_info, dict):
        raise FtError("the run's data.json is not a JSON object", where=str(info_path), hint=damaged)
    model, _, strategy = assemble(recipe, load_pretrained=False, task=task, data_info=data_info)
    apply_strategy(strategy, model)
    load_run_weights(model, run_dir)
    model.eval()
    return LoadedRun(recipe, model, strategy, run_dir)


def evaluate_run(run_dir: str | Path, split: str = "test") -> dict[str, float]:
    """Metrics of a finished run's model on one of its data splits.

    The split's report in ``<run_dir>/report/`` is written anew from the
    same pass (the other splits' files stay; the model card is not
    rewritten); a run directory that cannot be written gets a warning
    instead."""
    loaded = load_run(run_dir)
    bundle = build_data(loaded.recipe, loaded.model.backbone)
    data = {"train": bundle.train_eval or bundle.train, "val": bundle.val, "test": bundle.test}.get(split)
    if data is None:
        raise FtError(f"the data has no {split!r} split", where=str(run_dir), hint="try --split val or --split test")
    trainer = Trainer(loaded.model, bundle.train, None, train=loaded.recipe.train, optim=loaded.recipe.optim,
                      strategy=_KeepAsIs(), collate=loaded.model.backbone.collate(), quiet=True)
    evaluator = loaded.model.evaluator()
    metrics = {k.split("_", 1)[1]: v for k, v in trainer.evaluate(data, split, evaluator=evaluator).items()}
    if trainer.dist.is_main:
        refresh_report(Path(run_dir), split, split_report(evaluator, metrics))
    return metrics


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
    if out.exists() and not out.is_dir():
        raise FtError("the export folder is a file", where=str(out), hint="choose a new folder")
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
    for name in ("task.json", "data.json", "env.json", "MODEL_CARD.md", "summary.json"):
        if (loaded.run_dir / name).exists():
            shutil.copy2(loaded.run_dir / name, out / name)
    if (loaded.run_dir / "report").is_dir():  # the card links to its figures
        shutil.copytree(loaded.run_dir / "report", out / "report")
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
    name = loaded.recipe.data.name
    examples = [(plugin_step(registry, "ft_dataset_formats", name, f"reading the input {raw!r}",
                             lambda raw=raw: spec.read_input(raw, loaded.recipe.data.options, backbone)), 0)
                for raw in inputs]
    batch_inputs, _ = (backbone.collate() or default_collate)(examples)
    outputs = loaded.model(batch_inputs)
    return loaded.model.head.predict(outputs.float(), top_k=top_k)
