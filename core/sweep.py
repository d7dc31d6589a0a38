"""``ft sweep RECIPE``: search the recipe's ``[sweep]`` space with Optuna.

Each trial is an ordinary run directory, ``<sweep folder>/trials/trial-NNNN/``,
trained by ``ft.run(recipe with the trial's values, test=False)``. Its
objective is the recipe's monitor on validation (the best epoch's figure,
``summary["best_value"]``), never test. After each epoch the figure goes to
the pruner, which may end a poor trial there (``Trainer.request_stop``).
Only the winner is scored on test, once, at the end. The study lives in a
database (SQLite in the sweep folder, or a server every worker reaches), so
``ft sweep`` run again continues it, and any number of workers on any
number of machines share it (:mod:`ft.sweep_study` says how N stays N).
See docs/sweeps.md.
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import FtError
from .recipe import Recipe, apply_overrides, load_recipe, parse_override, read_toml, validate_recipe
from .sweep_space import EXAMPLE, SweepSettings, SweepSpace
from .sweep_report import report, write_results
from .sweep_study import Retry, make_pruner, open_storage, open_study, require_optuna, shown_url, storage_url, tally
from .sweep_trials import follow, lead
from .sweep_workers import WORKER_ENV, run_workers

#: the ``ft sweep`` options that override a ``[sweep]`` setting of the same name
SETTING_OPTIONS = ("trials", "timeout", "sampler", "pruner", "storage", "study")


@dataclass
class SweepResult:
    """What :func:`sweep` returns: the sweep folder, the study's name, and
    the winner as ``best.json`` records it (None while no trial completed)."""

    sweep_dir: Path
    study: str
    best: dict | None


@dataclass
class SweepContext:
    """One ``ft sweep`` invocation, as its parts share it: the recipe, the
    space, the resolved settings, where it writes, and this process's ranks."""

    raw: dict  # the recipe's table as written (overrides applied), [sweep] included
    name: str
    path: Path | None
    overrides: list[str]
    base: Recipe
    space: SweepSpace
    trials: int
    timeout: float | None
    sampler: str
    pruner: str
    url: str
    study_name: str
    seed: int
    sweep_dir: Path
    quiet: bool
    given: dict  # the options given explicitly (for the command that continues the sweep)
    dist: Any = None
    label: str = ""

    @property
    def settings(self) -> SweepSettings:
        return self.space.settings

    @property
    def trials_dir(self) -> Path:
        return self.sweep_dir / "trials"

    def say(self, text: str) -> None:
        if self.dist is None or self.dist.is_main:
            print(f"ft: sweep{self.label}: {text}", flush=True)

    def trial_recipe(self, params: Mapping[str, Any], run_dir: Path | None) -> Recipe:
        """The recipe with a trial's values, without ``[sweep]``, in ``run_dir``
        (None: no output.dir, as ``best.toml`` has it)."""
        raw = apply_overrides({k: v for k, v in self.raw.items() if k != "sweep"}, dict(params))
        output = dict(raw.get("output", {}))
        output.pop("dir", None)
        if run_dir is not None:
            output["dir"] = str(run_dir)
        raw["output"] = output
        from ._registry import get_registry

        return validate_recipe(raw, name=self.name, path=self.path, registry=get_registry())

    def command(self) -> str:
        """The command that continues this sweep."""
        if self.path is None:
            return "call ft.sweep.sweep(...) again with the same recipe and sweep_dir"
        parts = ["ft sweep", str(self.path), *(f"--set {o}" for o in self.overrides), "--dir", str(self.sweep_dir)]
        for option, value in self.given.items():
            parts += [f"--{option}", shown_url(value) if option == "storage" else str(value)]
        return " ".join(parts)


def sweep(recipe: str | Path | Mapping, overrides: Mapping[str, Any] | list[str] | None = None, *,
          trials: int | None = None, timeout: float | None = None, sampler: str | None = None,
          pruner: str | None = None, storage: str | None = None, study: str | None = None, workers: int = 1,
          sweep_dir: str | Path | None = None, quiet: bool = False) -> SweepResult:
    """Search the recipe's ``[sweep]`` space: run trials until the study has
    ``trials`` finished (complete or pruned) ones, then write the sweep
    folder's results and score the winner on test.

    Every option left None takes the recipe's ``[sweep]`` setting, else the
    default: ``trials`` 16, ``sampler`` "tpe" (seeded from ``train.seed``),
    ``pruner`` "median", ``storage`` SQLite in ``sweep_dir`` (default
    ``<output.root>/<recipe>-sweep``), ``study`` the recipe's name.
    ``workers`` > 1 runs that many trials at once on this machine, the CPU
    threads (or GPUs) split between them. Run it again to continue the
    study. Ctrl-C stops after the current step's checkpoint; the trial runs
    again (from it) when the sweep continues, and ``KeyboardInterrupt`` is raised.
    """
    require_optuna()
    ctx = _prepare(recipe, overrides, trials=trials, timeout=timeout, sampler=sampler, pruner=pruner,
                   storage=storage, study=study, sweep_dir=sweep_dir, quiet=quiet)
    if workers < 1:
        raise FtError(f"--workers must be 1 or more, found {workers}", where="ft sweep")
    from .distributed import get_distributed, launched
    from .parallel import resolve_device

    if launched():
        if workers > 1:
            raise FtError("--workers with torchrun: each torchrun job is one worker", where="ft sweep",
                          hint="start several torchrun jobs on the same --storage instead")
        ctx.dist = get_distributed(resolve_device(ctx.base.train.device).type)
    retry = Retry(ctx.settings)
    child = os.environ.get(WORKER_ENV)
    ctx.label = f" [worker {child}]" if child else ""
    if ctx.dist is not None and not ctx.dist.is_main:
        follow(ctx)
        return SweepResult(ctx.sweep_dir, ctx.study_name, None)
    leading = ctx.dist is not None  # rank 0 of a torchrun worker: the other ranks wait for its word
    study = None
    try:
        study = _open(ctx, retry)
        if not child:
            _announce(ctx, study)
        if workers > 1:
            run_workers(ctx, workers)
        else:
            lead(ctx, study, retry)
        return SweepResult(ctx.sweep_dir, ctx.study_name, None if child else report(ctx, study))
    except KeyboardInterrupt:
        leading = False  # every rank got the signal
        if not child:  # (a worker's parent says it once for all)
            ctx.say("interrupted; the trial that was running will run again (from its last checkpoint) when the "
                    f"sweep continues:\n  {ctx.command()}")
            if study is not None:
                write_results(ctx, study)
        raise
    finally:
        if leading:
            ctx.dist.broadcast_object(("done",))


# -- setting up ------------------------------------------------------------------


def _prepare(source: str | Path | Mapping, overrides: Mapping[str, Any] | list[str] | None, **options) -> SweepContext:
    """Read and validate the recipe (``[sweep]`` included) and resolve every setting."""
    base = load_recipe(source, overrides)
    if isinstance(source, Mapping):
        raw, path, where = dict(source), None, "recipe"
    else:
        path = Path(source)
        raw, where = read_toml(path), str(path)
    texts = [t for t in overrides] if isinstance(overrides, (list, tuple)) else \
        [f"{k}={_toml_value(v)}" for k, v in dict(overrides or {}).items()]
    raw = apply_overrides(raw, dict(parse_override(t) for t in texts))
    if base.sweep is None:
        raise FtError("the recipe has no [sweep] section: nothing to search", where=where,
                      hint="add the keys to search (docs/sweeps.md), e.g.\n" + textwrap.indent(EXAMPLE, "    "))
    settings = base.sweep.settings
    if base.train.monitor and not base.train.monitor.startswith("val_"):
        raise FtError(f"a sweep chooses on validation, and train.monitor is {base.train.monitor!r}", where=where,
                      hint="monitor a validation figure (val_accuracy, val_loss, ...) or leave train.monitor out")
    given = {k: options[k] for k in SETTING_OPTIONS if options[k] is not None}
    chosen = {k: given.get(k, getattr(settings, k)) for k in SETTING_OPTIONS}
    sampler, budget = chosen["sampler"], chosen["trials"]
    for option, known in (("sampler", ("tpe", "random", "grid")), ("pruner", ("median", "hyperband", "none"))):
        if chosen[option] not in known:
            raise FtError(f"unknown {option} {chosen[option]!r}", where=f"--{option}",
                          hint=f"choose one of: {', '.join(known)}")
    if budget < 1:
        raise FtError(f"--trials must be 1 or more, found {budget}", where="ft sweep")
    if chosen["timeout"] is not None and chosen["timeout"] <= 0:
        raise FtError(f"--timeout must be above 0 seconds, found {chosen['timeout']:g}", where="ft sweep")
    if sampler == "grid":  # an FtError naming the key when one cannot be gridded; no point runs twice
        budget = min(budget, base.sweep.grid_size())
    sweep_dir = Path(options["sweep_dir"] or Path(base.output.root) / f"{base.name}-sweep").resolve()
    url = storage_url(chosen["storage"], sweep_dir)
    return SweepContext(raw=raw, name=base.name, path=path.resolve() if path else None, overrides=texts, base=base,
                        space=base.sweep, trials=budget, timeout=chosen["timeout"], sampler=sampler,
                        pruner=chosen["pruner"], url=url, study_name=chosen["study"] or base.name,
                        seed=settings.seed if settings.seed is not None else base.train.seed, sweep_dir=sweep_dir,
                        quiet=options["quiet"], given=given)


def _toml_value(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _open(ctx: SweepContext, retry: Retry) -> Any:
    """The study (created on first use, its direction from the recipe's
    monitor); the sweep folder, claimed for it."""
    ctx.sweep_dir.mkdir(parents=True, exist_ok=True)
    claim = ctx.sweep_dir / "sweep.json"
    local = ctx.url == storage_url(None, ctx.sweep_dir)  # named as such, so the folder may move
    mine = {"study": ctx.study_name, "storage": "study.db in this folder" if local else shown_url(ctx.url)}
    if claim.exists():
        held = json.loads(claim.read_text())
        if {k: held.get(k) for k in mine} != mine:
            raise FtError(f"this sweep folder belongs to the study {held.get('study')!r} in {held.get('storage')}",
                          where=str(ctx.sweep_dir), hint="choose another --dir for this study (trial folders would "
                                                         "clash), or continue that study")
    storage = open_storage(ctx.url, ctx.settings, retry)
    study, monitor = open_study(storage, ctx.study_name, lambda: _describe_monitor(ctx.base))
    if not claim.exists():
        if ctx.trials_dir.exists() and any(ctx.trials_dir.iterdir()) and not study.get_trials(deepcopy=False):
            raise FtError("the sweep folder holds trial run directories but the study has no trials (was study.db "
                          "deleted?)", where=str(ctx.sweep_dir), hint="choose another --dir, or delete "
                                                                        f"{ctx.trials_dir}")
        from .files import write_json_atomic

        write_json_atomic(claim, {**mine, "recipe": str(ctx.path) if ctx.path else None})
    if ctx.base.train.monitor and ctx.base.train.monitor != monitor:
        raise FtError(f"the study {ctx.study_name!r} optimizes {monitor}, and this recipe monitors "
                      f"{ctx.base.train.monitor}", where=str(ctx.path or "recipe"),
                      hint="continue it with the same train.monitor, or start another study (--study NAME --dir DIR)")
    searched_epochs = any(p.key == "train.epochs" for p in ctx.space.params)
    study.pruner = make_pruner(ctx.pruner, ctx.settings, None if searched_epochs else ctx.base.train.epochs)
    return study


def _describe_monitor(recipe: Recipe) -> tuple[str, str]:
    """The recipe's monitored metric and whether larger is better, as the
    trainer will decide them (this builds the model, without its pretrained
    weights, to ask the head). A recipe without validation data is refused."""
    from .engine import assemble
    from .monitor import metric_mode

    cfg = recipe.train
    if cfg.monitor and cfg.monitor_mode != "auto":
        return cfg.monitor, cfg.monitor_mode
    model, bundle, _ = assemble(recipe, load_pretrained=False)
    if bundle.val is None:
        raise FtError("a sweep chooses on the validation split, and this data has none",
                      where=f"data ({recipe.data.name})", hint="give the data a validation split (see its options)")
    name = cfg.monitor or f"val_{getattr(model.head, 'default_metric', None) or 'loss'}"
    mode = cfg.monitor_mode if cfg.monitor_mode != "auto" else metric_mode(name, model.evaluator(), "train.monitor")
    return name, mode


def _announce(ctx: SweepContext, study: Any) -> None:
    finished = tally(study.get_trials(deepcopy=False), ctx.settings).finished
    pruner = {"median": f"median (from epoch {ctx.settings.prune_from_epoch}, after "
                        f"{ctx.settings.prune_startup_trials} complete trials)",
              "hyperband": "hyperband", "none": "none"}[ctx.pruner]
    ctx.say(f"study {ctx.study_name!r} in {shown_url(ctx.url)}: {ctx.trials} trials, sampler {ctx.sampler} (seed "
            f"{ctx.seed}), pruner {pruner}, objective {study.user_attrs.get('monitor')} on validation "
            f"({study.direction.name.lower()})")
    ctx.say("searching " + "; ".join(p.describe() for p in ctx.space.params))
    ctx.say(f"folder {ctx.sweep_dir}" + (f"; {finished} of the trials finished already: continuing"
                                        if finished else ""))
