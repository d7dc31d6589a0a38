"""The Optuna study behind ``ft sweep``: its storage, sampler and pruner,
and the bookkeeping that makes ``--trials N`` mean N finished trials over
any number of workers, none lost and none counted twice.

Workers share nothing but the study. Each trial belongs to a *lineage*:
a trial, and the retries that replace it when its worker dies or is
interrupted (Optuna's ``failed_trial`` system attribute names the first).
A lineage holds one of the N places from the moment its first trial starts
until it ends without a retry to come (a trial that raised an error, or a
worker that died more than ``retries`` times). A new trial whose number
comes after N lineages that hold a place is surplus: it is failed before
anything is sampled or trained (state FAIL, user attribute ``failure =
"surplus"``, left out of the results). Trial numbers are handed out by the
database in order, so two workers that ask at the same moment agree on
which of them is surplus, and the study ends with exactly N complete or
pruned trials. A retry always runs: it takes its lineage's place.

A trial whose worker died is found two ways. On this machine a worker's
process (host name, boot, pid and start time, recorded when the trial
starts) that no longer exists is dead at once; anywhere, a running trial
whose heartbeat (``heartbeat_interval``) is older than ``grace_period`` is
dead (Optuna's RDB heartbeat). Either way it is failed and a retry with
the same parameters and the epochs it reported is queued; a retry on the
machine that holds the dead trial's run directory resumes it from its last
checkpoint. The one gap: a worker killed between failing a dead trial and
queueing its retry (milliseconds) leaves a lineage that gives its place up
after :data:`AWAIT_RETRY_S` seconds, so the study still ends.
"""

from __future__ import annotations

import os
import random
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import FtError
from .sweep_space import SweepSettings, SweepSpace

#: seconds a failed trial whose retry never came keeps its lineage's place
AWAIT_RETRY_S = 60.0
#: what a trial's ``failure`` user attribute says (a FAIL without one was failed by the heartbeat: "died")
RETRIED = ("interrupted", "died")


def require_optuna():
    """The ``optuna`` module, or an :class:`FtError` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise FtError("ft sweep needs Optuna, which is not installed", where="ft sweep",
                      hint='pip install "ftkit[sweep]"') from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # ft prints each trial's outcome itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# -- storage ------------------------------------------------------------------


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The database URL: ``storage`` (``postgresql://`` meaning the psycopg
    3 driver the ``sweep`` extra installs), else SQLite in the sweep folder."""
    if not storage:
        return f"sqlite:///{(sweep_dir / 'study.db').resolve()}"
    scheme, sep, rest = storage.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return storage


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: show its scheme only
        return url.split("://", 1)[0] + "://..."


def open_storage(url: str, settings: SweepSettings, on_dead: Callable) -> Any:
    """An Optuna RDB storage with heartbeats (``on_dead(study, trial)`` is
    called for each trial failed for a silent heartbeat); an unreachable or
    unusable database is an :class:`FtError` naming the URL (no password)."""
    optuna = require_optuna()
    import sqlalchemy.exc

    shown = shown_url(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 60}}  # several local workers write the one file
    else:
        engine = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            engine["connect_args"] = {"connect_timeout": 10}
    check = ("check that the database server runs and accepts connections from this machine (host, port, "
             "firewall), and the user, password and database name (create the database first, e.g. createdb NAME)")
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine,
                                              heartbeat_interval=settings.heartbeat_interval,
                                              grace_period=settings.grace_period,
                                              heartbeat_stale_trial_callback=on_dead)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            # workers that start together on a new database create Optuna's tables at the same moment
            if attempt == 4:
                raise FtError(f"cannot set up the study database {shown}: {_first_line(exc)}",
                              where="--storage") from None
            time.sleep(0.5 + random.random())
        except sqlalchemy.exc.ArgumentError as exc:
            raise FtError(f"not a database URL: {shown} ({exc})", where="--storage",
                          hint="e.g. postgresql+psycopg://USER@HOST:5432/DB, or leave it out for SQLite in the "
                               "sweep folder") from None
        except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
            raise FtError(f"the database driver for {shown} is not installed ({exc})", where="--storage",
                          hint='pip install "ftkit[sweep]" (psycopg for PostgreSQL); for another database install '
                               "its SQLAlchemy driver") from None
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            raise FtError(f"cannot reach the study database {shown}: {_first_line(exc)}", where="--storage",
                          hint=check) from None
        except RuntimeError as exc:  # a schema from another Optuna version
            raise FtError(f"cannot use the study database {shown}: {exc}", where="--storage") from None


def _first_line(exc: Exception) -> str:
    """The database's own words (the driver's error), first line."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def open_study(storage: Any, name: str, describe_monitor: Callable[[], tuple[str, str]]) -> tuple[Any, str]:
    """The study ``name`` and its monitor, created if new: ``describe_monitor()``
    gives ``(metric, "max"|"min")`` then (it may build the model to ask its
    evaluator), and both are kept in the study."""
    optuna = require_optuna()
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        monitor, mode = describe_monitor()
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                    direction="maximize" if mode == "max" else "minimize")
        study.set_user_attr("monitor", monitor)
    return study, study.user_attrs.get("monitor", "value")


def make_sampler(kind: str, space: SweepSpace, seed: int, trials: int, startup: int | None) -> Any:
    """``tpe`` (multivariate; grouped when a key is conditional), ``random`` or ``grid``."""
    optuna = require_optuna()
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup or min(10, max(2, trials // 4)),
                                      multivariate=True, group=any(p.when for p in space.params))


def make_pruner(kind: str, settings: SweepSettings, epochs: int | None) -> Any:
    """``median`` (after ``prune_startup_trials`` complete trials, from epoch
    ``prune_from_epoch``), ``hyperband`` (1 epoch to the recipe's epochs,
    keeping a third at each rung) or ``none``."""
    optuna = require_optuna()
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.prune_startup_trials,
                                           n_warmup_steps=settings.prune_from_epoch)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs or "auto", reduction_factor=3)
    return optuna.pruners.NopPruner()


# -- who runs a trial ---------------------------------------------------------------


def _machine() -> str:
    """This boot of this machine and this process namespace: where a pid means one process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{socket.gethostname()}|{boot}|{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # no /proc: only heartbeats tell
        return ""


def _start_time(pid: int) -> str | None:
    """A live process's start time (clock ticks after boot); None if it does
    not exist or is a zombie (killed, not yet reaped by its parent)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if len(fields) < 20 or fields[0] in ("Z", "X") else fields[19]


def worker_id() -> str:
    """This process, as a trial records it: host, boot, pid namespace, pid and start time."""
    return f"{_machine()}|{os.getpid()}|{_start_time(os.getpid()) or ''}"


def _dead_here(worker: str) -> bool:
    """Whether ``worker`` was a process of this machine, boot and pid
    namespace that is gone (a container sharing the host name has its own
    namespace, so its processes are never judged from here)."""
    parts = worker.rsplit("|", 2)
    machine = _machine()
    if not machine or len(parts) != 3 or parts[0] != machine or not parts[1].isdigit() or not parts[2]:
        return False  # another machine: only its heartbeat can tell
    return _start_time(int(parts[1])) != parts[2]


# -- lineages and the budget -----------------------------------------------------


def failure(trial: Any) -> str:
    """Why a failed trial failed: error, surplus, interrupted or died."""
    return trial.user_attrs.get("failure") or "died"


def root(trial: Any) -> int:
    """The number of the first trial of ``trial``'s lineage."""
    return trial.system_attrs.get("failed_trial", trial.number)


def _place(trial: Any, settings: SweepSettings, now: float) -> str:
    """What the lineage whose latest trial is ``trial`` does with its place:
    ``finished``, ``live`` (running or queued), ``awaiting`` (a retry is
    coming) or ``free``."""
    state = trial.state.name
    if state in ("COMPLETE", "PRUNED"):
        return "finished"
    if state in ("RUNNING", "WAITING"):
        return "live"
    why = failure(trial)
    retried = why == "interrupted" or (why == "died" and trial.user_attrs.get("deaths", 0) < settings.retries)
    ended = trial.datetime_complete.timestamp() if trial.datetime_complete else now
    return "awaiting" if retried and now - ended < AWAIT_RETRY_S else "free"


@dataclass
class Tally:
    """Where the study stands: lineages finished, lineages holding a place
    (finished, live or awaiting a retry), and whether a retry is queued."""

    finished: int
    held: int
    queued: bool
    #: lineage root -> its place (see :func:`_place`)
    places: dict[int, str]

    def surplus(self, trial_number: int, lineage: int, budget: int) -> bool:
        """Whether a new trial ``trial_number`` comes after ``budget`` lineages that hold a place."""
        if lineage != trial_number:
            return False  # a retry takes its lineage's place
        before = sum(1 for r, place in self.places.items() if r < trial_number and place != "free")
        return before >= budget


def tally(trials: list, settings: SweepSettings) -> Tally:
    """The :class:`Tally` of a study's trials (surplus ones do not count)."""
    latest: dict[int, Any] = {}
    for trial in trials:
        if trial.state.name == "FAIL" and failure(trial) == "surplus":
            continue
        r = root(trial)
        if r not in latest or trial.number > latest[r].number:
            latest[r] = trial
    now = time.time()
    places = {r: _place(t, settings, now) for r, t in latest.items()}
    return Tally(finished=sum(p == "finished" for p in places.values()),
                 held=sum(p != "free" for p in places.values()),
                 queued=any(t.state.name == "WAITING" for t in latest.values()), places=places)


# -- failing and retrying ------------------------------------------------------------


class Retry:
    """Queue a failed trial again: same parameters, the epochs it reported,
    and where its run directory is (a retry on that machine resumes it).
    Optuna's ``failed_trial``/``retry_history`` system attributes are kept,
    as ``RetryFailedTrialCallback`` writes them; unlike it, the dead worker's
    own attributes are not copied (they would make the retry look dead),
    and only deaths count against ``retries`` (an interrupted trial always
    comes back). It is also the storage's callback for a trial whose
    heartbeat went silent."""

    def __init__(self, settings: SweepSettings):
        self.settings = settings
        self.log: list[tuple[int, str, bool]] = []  # (failed trial, why, whether a retry was queued)

    def __call__(self, study: Any, failed: Any, why: str = "died") -> None:
        optuna = require_optuna()
        deaths = failed.user_attrs.get("deaths", 0) + (why == "died")
        if why == "died" and deaths > self.settings.retries:
            self.log.append((failed.number, why, False))
            return
        system = {"failed_trial": root(failed),
                  "retry_history": [*failed.system_attrs.get("retry_history", []), failed.number]}
        user = {"retry_of": failed.number, "deaths": deaths,
                "previous_run_dir": failed.user_attrs.get("run_dir"), "previous_host": failed.user_attrs.get("host")}
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING, params=failed.params, distributions=failed.distributions,
            user_attrs={k: v for k, v in user.items() if v is not None}, system_attrs=system,
            intermediate_values=failed.intermediate_values))
        self.log.append((failed.number, why, True))


def trial_numbered(study: Any, number: int) -> Any:
    """The study's trial ``number`` (numbers are the trials' places in the study)."""
    return study.get_trials(deepcopy=False)[number]


def fail_dead(study: Any, retry: Retry) -> None:
    """Fail the running trials whose worker is gone (a process of this
    machine that no longer exists, or a heartbeat older than the grace
    period) and queue their retries (``retry.log`` says which)."""
    optuna = require_optuna()
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        # a worker names itself right after it asks for a trial: one that never did died in between
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        unnamed = not worker and now - started > retry.settings.grace_period
        if unnamed or (worker and _dead_here(worker)):
            try:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            except (ValueError, RuntimeError):  # another worker failed it first: that one queues the retry
                continue
            retry(study, trial_numbered(study, trial.number), "died")
    optuna.storages.fail_stale_trials(study)  # the heartbeat's verdict; Retry runs for each
