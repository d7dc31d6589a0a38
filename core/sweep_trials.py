"""Running trials: the worker loop of ``ft sweep``, one trial from ask to
tell, the pruning callback, and the other ranks of a torchrun worker.

A worker asks the study for a trial only while the study has places left
(:mod:`ft.sweep_study`), trains it as an ordinary run directory with
``ft.run(..., test=False)`` and tells the study the run's best validation
figure. A retry takes over its failed attempt's run directory when it is on
this machine and resumes it from its last checkpoint.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FtError
from .sweep_space import shown
from .sweep_study import Retry, fail_dead, make_sampler, require_optuna, root, tally, trial_numbered, worker_id

if TYPE_CHECKING:
    from .sweep import SweepContext


class _Surplus(Exception):
    """A trial asked for after the study's places were all taken (see ft.sweep_study)."""


class Pruning:
    """The callback each trial runs with: after every epoch it reports the
    monitored validation figure to the Optuna trial and, when the pruner
    gives up on the trial, ends it there (``run.trainer.request_stop``).
    ``trial`` None (the other ranks of a torchrun worker): rank 0 decides."""

    def __init__(self, trial: Any, reported: set[int]):
        self.trial = trial
        self.reported = set(reported)  # epochs a retried trial's first attempt already reported
        self.pruned_after: int | None = None

    def ft_epoch_end(self, run, epoch, metrics) -> None:
        """Report the epoch's figure; stop the trial if the pruner says so (never after its last epoch)."""
        value = metrics.get(run.trainer.monitor.name)
        if self.trial is None or value is None:
            return
        if epoch not in self.reported:
            self.trial.report(float(value), epoch)
            self.reported.add(epoch)
        if epoch < run.trainer.cfg.epochs and self.trial.should_prune():
            self.pruned_after = epoch
            run.trainer.request_stop("pruned")


def lead(ctx: SweepContext, study: Any, retry: Retry) -> None:
    """Run trials until the study has ``ctx.trials`` finished ones (waiting
    while the last places are held by trials running elsewhere), the
    timeout passes, or ``max_failures`` trials in a row fail."""
    started, failures, waiting = time.monotonic(), 0, False
    poll = min(5, ctx.settings.heartbeat_interval)
    while True:
        fail_dead(study, retry)
        _say_retries(ctx, retry)
        trials = study.get_trials(deepcopy=False)
        count = tally(trials, ctx.settings)
        if count.finished >= ctx.trials:
            return
        if ctx.timeout and time.monotonic() - started >= ctx.timeout:
            ctx.say(f"timeout ({ctx.timeout:g} s): starting no new trial ({count.finished} of {ctx.trials} "
                    "finished; run again to continue)")
            return
        if count.held >= ctx.trials and not count.queued:
            if not waiting:
                ctx.say(f"the last {count.held - count.finished} trial(s) run elsewhere: waiting for them (one "
                        f"whose worker died is retried after {ctx.settings.grace_period} s of silence)")
            waiting = True
            if ctx.dist is not None:
                ctx.dist.broadcast_object(("wait",))
            time.sleep(poll)
            continue
        waiting = False
        # seeded by the trial's number-to-be: a resumed study samples as an unbroken one, workers differ (the
        # grid keeps one seed: it orders the grid points by it)
        seed = ctx.seed if ctx.sampler == "grid" else ctx.seed + len(trials)
        study.sampler = make_sampler(ctx.sampler, ctx.space, seed, ctx.trials, ctx.settings.startup_trials)
        outcome = _run_one(ctx, study, retry)
        if outcome.startswith("error"):
            failures += 1
        elif outcome in ("complete", "pruned"):
            failures = 0
        if failures >= ctx.settings.max_failures:
            raise FtError(f"{failures} trials in a row failed; the last: {outcome.removeprefix('error: ')}",
                          where=f"study {ctx.study_name!r}",
                          hint="fix the recipe or the space (see results.csv), then run ft sweep again; "
                               "sweep.max_failures sets how many failures in a row stop a worker")


def _say_retries(ctx: SweepContext, retry: Retry) -> None:
    for number, why, queued in retry.log:
        what = "its worker died" if why == "died" else "it was interrupted"
        ctx.say(f"trial {number} failed because {what}: " + ("queued to run again" if queued else
                f"not run again (it lost its worker more than sweep.retries = {ctx.settings.retries} times)"))
    retry.log.clear()


def _run_one(ctx: SweepContext, study: Any, retry: Retry) -> str:
    """One trial, start to end; how it went: complete, pruned, surplus or
    ``error: ...`` (Ctrl-C raises KeyboardInterrupt, the trial queued again)."""
    asked: dict[str, int] = {}

    def objective(trial):
        asked["number"] = trial.number
        return _objective(ctx, study, trial, retry)

    try:
        study.optimize(objective, n_trials=1, catch=(Exception,))
    except (ValueError, RuntimeError):
        if "number" not in asked or trial_numbered(study, asked["number"]).state.name == "RUNNING":
            raise
        # another worker failed it while it ran: its heartbeat was silent too long (a machine too busy to send it)
        ctx.say(f"trial {asked['number']} was failed by another worker while it ran (no heartbeat for "
                f"{ctx.settings.grace_period} s): it runs again as its retry")
        return "lost"
    if "number" not in asked:
        return "surplus"
    done = trial_numbered(study, asked["number"])
    state, attrs = done.state.name, done.user_attrs
    if state == "FAIL":
        if attrs.get("failure") == "surplus":
            return "surplus"
        ctx.say(f"trial {done.number} failed: {attrs.get('error', '?')}")
        return f"error: {attrs.get('error', '?')}"
    monitor = study.user_attrs.get("monitor", "value")
    best = study.best_trial if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)) else None
    how = f"pruned after epoch {done.last_step}" if state == "PRUNED" else "complete"
    epochs = attrs.get("epochs")
    ctx.say(f"trial {done.number} {how}: {monitor} {attrs.get('value', float('nan')):.4f} ({epochs} "
            f"epoch{'' if epochs == 1 else 's'}, {attrs.get('seconds', 0):.0f} s)"
            + (f"; best so far {best.value:.4f} (trial {best.number})" if best else ""))
    return state.lower()


def _objective(ctx: SweepContext, study: Any, trial: Any, retry: Retry) -> float:
    optuna = require_optuna()
    from .engine import run

    me = trial_numbered(study, trial.number)
    if tally(study.get_trials(deepcopy=False), ctx.settings).surplus(trial.number, root(me), ctx.trials):
        trial.set_user_attr("failure", "surplus")
        raise _Surplus(f"the study's {ctx.trials} places were taken")
    params = ctx.space.suggest(trial)
    run_dir = (ctx.trials_dir / f"trial-{trial.number:04d}").resolve()
    for key, value in {"worker": worker_id(), "host": socket.gethostname(), "run_dir": str(run_dir)}.items():
        trial.set_user_attr(key, value)
    resume = _adopt(trial.user_attrs.get("previous_run_dir"), run_dir)
    recipe = ctx.trial_recipe(params, run_dir)
    retried = trial.user_attrs.get("retry_of")
    ctx.say(f"trial {trial.number}" + (f" (trial {retried} again" + (", from its checkpoint)" if resume else ")")
                                       if retried is not None else "") + ": "
            + ", ".join(f"{k}={shown(v)}" for k, v in params.items()))
    if ctx.dist is not None:
        ctx.dist.broadcast_object(("run", params, str(run_dir), resume))
    pruning = Pruning(trial, set(me.intermediate_values))
    started = time.perf_counter()
    try:
        result = run(recipe, resume=run_dir if resume else False, quiet=ctx.quiet, callbacks=[pruning], test=False)
    except KeyboardInterrupt:
        trial.set_user_attr("failure", "interrupted")
        retry(study, trial_numbered(study, trial.number), "interrupted")  # queued before Optuna fails it
        raise
    except Exception as exc:
        trial.set_user_attr("failure", "error")
        trial.set_user_attr("error", " ".join(str(exc).split())[:300] or type(exc).__name__)
        raise
    finally:
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        _free_memory()
    summary = result.summary
    value = summary.get("best_value")
    trial.set_user_attr("value", value)
    trial.set_user_attr("epochs", summary.get("epochs_completed"))
    trial.set_user_attr("stopped", summary.get("stopped"))
    monitor = study.user_attrs.get("monitor")
    if summary.get("monitor") != monitor:
        raise FtError(f"the trial monitored {summary.get('monitor')}, and the study optimizes {monitor}",
                      hint="a sweep needs validation data and the study's monitor (see train.monitor)")
    if value is None or not math.isfinite(value):
        raise FtError(f"the trial reached no finite {monitor}")
    if pruning.pruned_after is not None:
        raise optuna.TrialPruned(f"after epoch {pruning.pruned_after}")
    return value


def _adopt(previous: str | None, run_dir: Path) -> bool:
    """A retry takes over its failed attempt's run directory when it is on
    this machine: renamed to the retry's name, resumed from its last
    checkpoint (True); one with no checkpoint yet is removed (False)."""
    from .checkpoint import latest_checkpoint

    if not previous:
        return False
    old = Path(previous)
    if old == run_dir or not old.is_dir() or old.parent != run_dir.parent:
        return False
    if latest_checkpoint(old) is None:
        shutil.rmtree(old, ignore_errors=True)
        return False
    os.replace(old, run_dir)
    return True


def _free_memory() -> None:
    """Between trials: the last model's memory back (a long sweep must not grow)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def follow(ctx: SweepContext) -> None:
    """A torchrun worker's other ranks: run each trial rank 0 broadcasts
    (rank 0 talks to the study and records the outcome), then score the
    winner with it, until it says it is done."""
    from .engine import evaluate_run, run

    while True:
        message = ctx.dist.broadcast_object(None)
        if message[0] == "run":
            _, params, run_dir, resume = message
            try:
                run(ctx.trial_recipe(params, Path(run_dir)), resume=Path(run_dir) if resume else False, quiet=True,
                    callbacks=[Pruning(None, set())], test=False)
            except Exception:  # noqa: BLE001 - rank 0 met it too and records the trial's failure
                pass
            _free_memory()
        elif message[0] == "evaluate":
            try:
                evaluate_run(message[1], "test")
            except Exception:  # noqa: BLE001 - rank 0 reports it
                pass
        elif message[0] == "done":
            return
