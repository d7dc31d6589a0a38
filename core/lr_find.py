"""The learning-rate range test: ``ft lr-find RECIPE`` suggests ``optim.lr``.

Smith 2017 ("Cyclical Learning Rates for Training Neural Networks"), as
fastai's ``lr_find`` and Lightning's ``Tuner.lr_find`` run it: train a few
steps while the learning rate grows exponentially from ``start_lr`` to
``end_lr``, record each step's loss, and read the rate off the curve: where
the loss falls, before it blows up (docs/lr_find.md).

Each step is a real optimizer step of the recipe's own training
(:meth:`ft.Trainer.train_step`: the model, data, freeze strategy, batch,
accumulation, precision and clipping of ``ft run``). Every optimizer group
trains at the step's rate times the multiplier it has at the start of
training (``optim.head_lr_mult``, the strategy's layer-wise factors and its
schedule at step 0), so a group a strategy keeps frozen at first (rate 0)
stays frozen, and the rate on the curve is the value ``optim.lr`` takes.
The test leaves the trainer as it found it: weights, optimizer, schedule,
step count and random-number state are put back afterwards, so training
that follows is bit-identical to training without the test.

One process only: under ``torchrun`` it refuses (docs/lr_find.md says how
to test the global batch of a multi-rank run in one process).
"""

from __future__ import annotations

import json
import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ._registry import Registry, get_registry
from .engine import assemble, check_data
from .errors import FtError
from .files import save_figure, write_csv_atomic, write_json_atomic
from .freezing import Progress
from .recipe import Recipe, load_recipe, parse_override
from .trainer import Trainer, seed_everything

#: smoothing of the recorded loss: an exponential moving average, debiased (fastai's and Lightning's 0.98)
BETA = 0.98
#: the test stops once the smoothed loss exceeds this many times its lowest value so far
DIVERGENCE = 4.0
#: the fewest steps a test may take
MIN_STEPS = 10
#: points at the end the suggestions leave out: the climb into divergence, or wild last steps (fastai's 5)
SKIP_END = 5
#: the fewest points the suggestions need (a full test of ``MIN_STEPS`` steps has them)
MIN_POINTS = 4

STOPPED_WHY = {
    "range": "the whole range ran without the loss diverging",
    "diverged": f"the smoothed loss passed {DIVERGENCE:g}x its minimum (diverged)",
    "nonfinite": "the loss or the gradients became NaN/inf",
}


@dataclass
class LrCurve:
    """What :func:`range_test` measured, one entry per step taken."""

    #: the step's rate: the value ``optim.lr`` stood for (each group trains at it x its multiplier)
    lrs: list[float]
    #: the mean training loss of the step (NaN for a step with NaN/inf loss or gradients)
    losses: list[float]
    #: ``losses`` smoothed (exponential moving average, ``BETA``, debiased)
    smoothed: list[float]
    #: "range" (every step ran), "diverged" or "nonfinite"
    stopped: str
    #: the steps the test was planned to take
    steps: int
    #: optimizer group -> the factor on the rate it trained at (0: frozen during the test)
    multipliers: dict[str, float]


@dataclass(frozen=True)
class Suggestions:
    """Rates read off a curve by fastai's rules, on the smoothed loss."""

    #: the rate halfway down the longest stretch over which the loss keeps falling (the suggestion)
    valley: float
    #: the rate where the loss falls fastest per decade of rate
    steep: float
    #: the rate at the lowest loss, divided by 10
    minimum: float
    #: points in the longest valley (a valley of 1-2 points is a weak suggestion)
    valley_points: int


@dataclass
class LrFindResult:
    """What :func:`lr_find` returns (and writes to ``out``)."""

    #: the suggested ``optim.lr`` (``suggestions.valley``)
    suggested_lr: float
    #: the recipe's own ``optim.lr``
    recipe_lr: float
    suggestions: Suggestions
    curve: LrCurve
    #: the folder with lr_find.png, lr_find.csv and lr_find.json
    out: Path
    #: ``ft run RECIPE --set optim.lr=...`` (None for a recipe given as a dict)
    command: str | None


def check_options(steps: int, start_lr: float, end_lr: float) -> None:
    """Refuse a range no test can run: fewer than ``MIN_STEPS`` steps, a
    rate that is not a positive number, or ``start_lr >= end_lr``."""
    if not isinstance(steps, int) or steps < MIN_STEPS:
        raise FtError(f"--steps must be at least {MIN_STEPS} (got {steps})", where="ft lr-find --steps",
                      hint="100 (the default) draws a curve the suggestions can read")
    for option, value in (("--start-lr", start_lr), ("--end-lr", end_lr)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise FtError(f"{option} must be a positive number (got {value})", where=f"ft lr-find {option}")
    if start_lr >= end_lr:
        raise FtError(f"--start-lr ({start_lr:g}) must be below --end-lr ({end_lr:g})",
                      where="ft lr-find --start-lr/--end-lr", hint="the rate grows from --start-lr to --end-lr, "
                                                                   "e.g. --start-lr 1e-7 --end-lr 10 (the defaults)")


def _refuse_ranks(enabled: bool) -> None:
    if enabled:
        raise FtError("ft lr-find runs in one process, not under torchrun", where="ft lr-find",
                      hint="run it without torchrun; to test the global batch of an N-rank run, multiply "
                           "train.grad_accum by N (--set train.grad_accum=...)")


# -- the test -------------------------------------------------------------------------


def range_test(trainer: Trainer, *, steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0,
               on_step: Callable[[int, float, float], None] | None = None) -> LrCurve:
    """Run the range test with ``trainer`` and put it back as it was.

    ``steps`` optimizer steps, the rate growing exponentially from
    ``start_lr`` to ``end_lr``; it stops early once the smoothed loss
    exceeds ``DIVERGENCE`` x its minimum or a step goes NaN/inf.
    ``on_step(step, lr, loss)`` is called after each step (1-based). The
    trainer's weights, optimizer and scaler state, schedule, weight average,
    step count, non-finite count, module modes and random-number state are
    restored afterwards, so :meth:`Trainer.fit` then trains exactly as it
    would have without the test.
    """
    check_options(steps, start_lr, end_lr)
    _refuse_ranks(trainer.dist.enabled)
    trainer.setup()
    saved = trainer.snapshot()
    try:
        return _measure(trainer, steps, start_lr, end_lr, on_step)
    finally:
        trainer.restore(saved)


def _measure(trainer: Trainer, steps: int, start_lr: float, end_lr: float,
             on_step: Callable[[int, float, float], None] | None) -> LrCurve:
    groups = trainer.optimizer.param_groups
    factors = _group_factors(trainer)
    multipliers = {group["ft_group"]: factor for group, factor in zip(groups, factors)}
    trainer.nonfinite.limit = steps  # a NaN step ends the test here, not the run with an error
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, lowest, stopped = 0.0, math.inf, "range"
    windows = _windows(trainer)
    for i in range(steps):
        rate = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
        for group, factor in zip(groups, factors):
            group["lr"] = rate * factor
        # every step at the start's schedule: which groups move (for clipping), which the strategy has
        # unfrozen (and must give fresh optimizer state), before and after the test
        loss = trainer.train_step(next(windows), hold_step=True)
        loss = math.nan if loss is None or not math.isfinite(loss) else loss
        average = BETA * average + (1 - BETA) * loss
        smooth = average / (1 - BETA ** (i + 1))
        lrs.append(rate)
        losses.append(loss)
        smoothed.append(smooth)
        if on_step is not None:
            on_step(i + 1, rate, loss)
        if math.isnan(smooth):
            stopped = "nonfinite"
            break
        lowest = min(lowest, smooth)
        if i > 0 and lowest > 0 and smooth > DIVERGENCE * lowest:
            stopped = "diverged"
            break
    return LrCurve(lrs, losses, smoothed, stopped, steps, multipliers)


def _group_factors(trainer: Trainer) -> list[float]:
    """Each optimizer group's rate as a multiple of ``optim.lr`` at the
    trainer's current step: its static factor (``head_lr_mult``, layer-wise
    decay: the group's base rate over ``optim.lr``) times the strategy's
    multiplier now, as the trainer's schedule computes it."""
    spe = max(1, trainer.steps_per_epoch)
    now = Progress(trainer.step, trainer.step // spe, spe)
    return [base / trainer.optim_cfg.lr * trainer.strategy.lr_multiplier(group["ft_group"], now)
            for group, base in zip(trainer.optimizer.param_groups, trainer.scheduler.base_lrs)]


def _windows(trainer: Trainer) -> Iterator[list]:
    """Optimizer-step windows, epoch after epoch for as long as the test
    needs them, every one in the first epoch's train/eval modes (a backbone
    the strategy freezes at first stays in eval mode, its BatchNorm still)."""
    epoch = 0
    while True:
        empty = True
        for window in trainer.train_windows(epoch, quiet=trainer.quiet):
            if epoch:
                trainer.strategy.set_train_mode(trainer.model, 0)
            empty = False
            yield window
        if empty:
            raise FtError("the training data gives no batches", where="ft lr-find")
        epoch += 1


# -- reading the curve ----------------------------------------------------------------


def suggest(curve: LrCurve) -> Suggestions:
    """fastai's ``valley`` (the suggestion), ``steep`` and ``minimum`` rules
    on the smoothed loss, leaving out the first tenth of the planned steps
    (the average is still settling) and the last ``SKIP_END`` points (the
    climb into divergence). Too few points left is an :class:`FtError`
    saying how to widen the test."""
    finite = next((i for i, s in enumerate(curve.smoothed) if not math.isfinite(s)), len(curve.smoothed))
    begin = curve.steps // 10
    end = finite - SKIP_END
    if end - begin < MIN_POINTS:
        raise _too_few(curve)
    lrs = np.asarray(curve.lrs[begin:end])
    losses = np.asarray(curve.smoothed[begin:end])
    first, last = longest_valley(losses)
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return Suggestions(valley=float(lrs[first + (last - first) // 2]), steep=float(lrs[int(np.argmin(slopes))]),
                       minimum=float(lrs[int(np.argmin(losses))]) / 10, valley_points=last - first + 1)


def longest_valley(losses: np.ndarray) -> tuple[int, int]:
    """First and last index of the longest strictly falling subsequence of
    ``losses``: the stretch of rates over which the loss keeps coming down,
    blips left out (fastai's valley)."""
    n = len(losses)
    length = np.ones(n, dtype=int)  # the longest falling subsequence that ends at i
    start = np.arange(n)  # ... and where it starts
    best = 0
    for i in range(1, n):
        higher = np.flatnonzero(losses[:i] > losses[i])
        if higher.size:
            j = higher[np.argmax(length[higher])]
            length[i], start[i] = length[j] + 1, start[j]
            if length[i] > length[best]:
                best = i
    return int(start[best]), best


def _too_few(curve: LrCurve) -> FtError:
    """Why a curve that stopped early gives no suggestion, and what to change
    (a test that ran every step always has points enough)."""
    at = f"{curve.lrs[-1]:.1e}"
    what = "diverged" if curve.stopped == "diverged" else "became NaN/inf"
    return FtError(f"the loss {what} after {len(curve.lrs)} steps (at lr {at}), too soon for a suggestion",
                   where="ft lr-find", hint=f"lower --end-lr or raise --steps, so that more steps fall below lr {at}; "
                                     f"if it happens at the first steps, lower --start-lr too")


# -- ft lr-find -------------------------------------------------------------------------


def lr_find(recipe: str | Path | Mapping | Recipe, overrides: Mapping[str, Any] | list[str] | None = None, *,
            steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0, out: str | Path | None = None,
            quiet: bool = False) -> LrFindResult:
    """The range test on what a recipe describes, its curve and suggestion.

    ``recipe`` is a TOML path, a dict or a loaded :class:`Recipe`;
    ``overrides`` (``{"train.batch_size": 64}`` or ``--set`` texts) apply
    to a path or dict. Writes lr_find.png (the smoothed loss against the
    rate, the suggestion marked), lr_find.csv (step, lr, loss, smoothed)
    and lr_find.json (the suggestions, the recipe's lr, steps run, why it
    stopped) into ``out`` (default ``<output.root>/<recipe>-lr-find``;
    those three files are replaced) and prints the suggested rate and the
    ``ft run`` line that uses it. Too short a curve is an :class:`FtError`
    (the files are written first, so the plot shows what happened).
    """
    check_options(steps, start_lr, end_lr)
    _refuse_ranks(int(os.environ.get("WORLD_SIZE", "1")) > 1)
    registry = get_registry()
    loaded = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides, registry)
    folder = Path(out) if out is not None else Path(loaded.output.root) / f"{loaded.name}-lr-find"
    _make_folder(folder)
    trainer = build_trainer(loaded, registry, quiet)
    say = (lambda text: None) if quiet else (lambda text: print(text, flush=True))
    say(f"ft: lr-find {loaded.name}: up to {steps} steps, lr {start_lr:g} -> {end_lr:g} (exponential), "
        f"strategy {loaded.freeze.name}, batch {loaded.train.batch_size} x accum {loaded.train.grad_accum}")
    every = max(1, steps // 10)

    def progress(step: int, lr: float, loss: float) -> None:
        if step % every == 0:
            say(f"ft:   step {step:>4}/{steps}  lr {lr:.1e}  loss {loss:.4f}")

    curve = range_test(trainer, steps=steps, start_lr=start_lr, end_lr=end_lr, on_step=progress)
    source = recipe.path if isinstance(recipe, Recipe) else recipe
    recipe_lr = loaded.optim.lr
    try:
        suggestions = suggest(curve)
    except FtError as error:  # the files first: the plot shows what happened
        write_outputs(folder, curve, None, recipe_lr, loaded.name, None)
        raise FtError(error.message, where=str(folder / "lr_find.png"), hint=error.hint) from None
    command = run_command(source, overrides, suggestions.valley) if isinstance(source, (str, Path)) else None
    write_outputs(folder, curve, suggestions, recipe_lr, loaded.name, command)
    _report(say, curve, suggestions, recipe_lr, folder, command)
    return LrFindResult(suggestions.valley, recipe_lr, suggestions, curve, folder, command)


def build_trainer(recipe: Recipe, registry: Registry | None = None, quiet: bool = True) -> Trainer:
    """The recipe's model, data and freeze strategy, assembled as ``ft.run``
    assembles them (same seed), in a trainer without a run directory
    (``quiet=False``: it says when it caches a frozen backbone's features)."""
    registry = registry or get_registry()
    check_data(recipe, registry)
    seed_everything(recipe.train.seed)
    model, bundle, strategy = assemble(recipe, registry)
    return Trainer(model, bundle.train, bundle.val, train=recipe.train, optim=recipe.optim, strategy=strategy,
                   collate=model.backbone.collate(), registry=registry, recipe=recipe, data=bundle, quiet=quiet)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission
        raise FtError(f"cannot create the output folder: {exc.strerror or exc}", where=str(folder),
                      hint="choose a folder you can write to (--out, or --set output.root=...)") from None


def run_command(source: str | Path, overrides: Mapping[str, Any] | list[str] | None, lr: float) -> str:
    """``ft run SOURCE [--set ...] --set optim.lr=LR``: the overrides the
    test ran with (but its optim.lr) and the rate, as two significant digits."""
    if isinstance(overrides, Mapping):  # a TOML value as --set reads it (JSON writes numbers, booleans, lists alike)
        given = [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in overrides.items()]
    else:
        given = list(overrides or [])
    kept = [text for text in given if parse_override(text)[0] != "optim.lr"]
    words = ["ft", "run", str(source), *(w for text in kept for w in ("--set", text)), "--set", f"optim.lr={lr:.1e}"]
    return shlex.join(words)


def _report(say: Callable[[str], None], curve: LrCurve, suggestions: Suggestions, recipe_lr: float,
            folder: Path, command: str | None) -> None:
    say(f"ft: {len(curve.lrs)} of {curve.steps} steps, up to lr {curve.lrs[-1]:.1e}: {STOPPED_WHY[curve.stopped]}")
    frozen = [name for name, factor in curve.multipliers.items() if factor == 0]
    if any(factor != 1 for factor in curve.multipliers.values()):
        shown = ", ".join(f"{name} x{factor:g}" for name, factor in curve.multipliers.items())
        say(f"ft: groups trained at lr x {shown}" + (" (frozen at the start of training)" if frozen else ""))
    say(f"ft: suggested optim.lr {suggestions.valley:.1e} (valley: halfway down the longest fall of the loss)")
    if suggestions.valley_points < 3:
        say("ft: warning: the loss hardly fell over the range: start lower (--start-lr) or look at the plot")
    say(f"ft:   steepest fall at {suggestions.steep:.1e}, minimum/10 {suggestions.minimum:.1e}; "
        f"the recipe's optim.lr is {recipe_lr:g}")
    say(f"ft: lr_find.png, lr_find.csv and lr_find.json in {folder}")
    say(command if command is not None else f"ft: set optim.lr = {suggestions.valley:.1e} in the recipe")


# -- the files --------------------------------------------------------------------------


def write_outputs(folder: Path, curve: LrCurve, suggestions: Suggestions | None, recipe_lr: float, name: str,
                  command: str | None) -> None:
    """lr_find.csv, lr_find.json and lr_find.png into ``folder`` (replaced)."""
    write_csv_atomic(folder / "lr_find.csv", ["step", "lr", "loss", "smoothed"],
                     ([i, f"{lr:.6e}", f"{loss:.6g}", f"{smooth:.6g}"]
                      for i, (lr, loss, smooth) in enumerate(zip(curve.lrs, curve.losses, curve.smoothed), 1)))
    write_json_atomic(folder / "lr_find.json", {
        "recipe": name, "recipe_lr": recipe_lr,
        "suggested_lr": suggestions.valley if suggestions else None,
        "suggestions": ({"valley": suggestions.valley, "steep": suggestions.steep,
                         "minimum_div_10": suggestions.minimum} if suggestions else None),
        "valley_points": suggestions.valley_points if suggestions else None,
        "command": command, "steps_planned": curve.steps, "steps_run": len(curve.lrs),
        "start_lr": curve.lrs[0], "last_lr": curve.lrs[-1], "stopped": curve.stopped,
        "stopped_why": STOPPED_WHY[curve.stopped], "group_lr_multipliers": curve.multipliers,
        "smoothing_beta": BETA, "divergence_factor": DIVERGENCE,
    })
    plot_curve(curve, suggestions, recipe_lr, f"{name}: learning-rate range test", folder / "lr_find.png")


def plot_curve(curve: LrCurve, suggestions: Suggestions | None, recipe_lr: float, title: str, path: Path) -> None:
    """The smoothed loss against the rate (log axis), each step's loss
    light behind it, the suggestions and the recipe's rate marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs, smoothed = np.asarray(curve.lrs), np.asarray(curve.smoothed)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(lrs, curve.losses, color="tab:blue", alpha=0.25, lw=1, label="loss of each step")
    ax.plot(lrs, smoothed, color="tab:blue", lw=2, label="smoothed loss")
    finite = np.isfinite(smoothed)

    def on_curve(lr: float) -> float:
        return float(np.interp(np.log(lr), np.log(lrs[finite]), smoothed[finite]))

    if suggestions is not None:
        ax.axvline(suggestions.valley, color="tab:red", ls="--", lw=1)
        for lr, marker, color, label in ((suggestions.valley, "o", "tab:red", "suggested (valley)"),
                                         (suggestions.steep, "^", "tab:orange", "steepest fall"),
                                         (suggestions.minimum, "v", "tab:green", "minimum/10")):
            ax.plot([lr], [on_curve(lr)], marker, color=color, ms=8, label=f"{label} {lr:.1e}")
    ax.axvline(recipe_lr, color="grey", ls=":", lw=1.5, label=f"recipe's optim.lr {recipe_lr:g}")
    if finite.any():  # the raw loss of the last steps can be huge: the smoothed curve sets the scale
        low, high = smoothed[finite].min(), smoothed[finite].max()
        pad = 0.1 * (high - low) or 0.1 * abs(high) or 0.1
        ax.set_ylim(low - pad, high + pad)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (optim.lr)")
    ax.set_ylabel("training loss")
    ax.set_title(f"{title} ({len(lrs)} steps; {curve.stopped})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
