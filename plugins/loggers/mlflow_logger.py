"""The ``mlflow`` logger: a run's settings, curves, files and model in an
MLflow tracking store (needs ``pip install "ftkit[mlflow]"``).

What it records (names in :mod:`ft.plugins.loggers.records`):

* at the start: the resolved recipe as params (flat dotted keys, values as
  text; one longer than MLflow allows ends in ``...[truncated N chars]``)
  and the tags ``ftkit.version``, ``ftkit.backbone``, ``ftkit.strategy``,
  ``ftkit.run_dir``;
* every ``train.log_every`` steps: ``train/loss``, ``lr``, ``lr/GROUP`` at
  step = the optimizer step (sent in batches, at most ``flush_secs`` late);
* every epoch: ``val/NAME``, ``train/epoch_loss``, ``perf/...`` at step =
  the epoch;
* at the end: the final evaluation (``test_accuracy``, ``val_accuracy``,
  ...), the run directory's files as artifacts (not ``checkpoints/``,
  ``best/``, ``cache/``, ``tensorboard/``) and the exported model (LoRA
  merged) as an MLflow pyfunc model (:mod:`ft.plugins.loggers.mlflow_export`),
  then the MLflow run is FINISHED.

The store: ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite
file beside the run directories, ``<output.root>/mlflow.db``, whose new
experiments keep their artifacts in ``<output.root>/mlartifacts`` (any
``sqlite:`` store: ``mlartifacts/`` beside the database file).

A run that raises or is interrupted gets no ``ft_run_end``: its MLflow run
is marked FAILED when the logger is garbage-collected, at the latest when
the process exits. The logger uses ``MlflowClient`` only, so no MLflow run
is ever left active in the process (``mlflow.active_run()`` stays None).
``ft run --resume`` continues the same MLflow run (found by its
``ftkit.run_dir`` tag): params keep their first values, and the steps
replayed after the checkpoint are recorded again.
"""

from __future__ import annotations

import os
import re
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field

from ft.errors import FtError
from ft.specs import Options

from .extras import check_library, import_library
from .mlflow_export import log_model
from .records import epoch_scalars, final_scalars, run_params, run_tags, step_scalars

NAME = "mlflow"
#: run-directory entries never sent as artifacts: weights (the model is logged as a model), caches, other loggers
SKIPPED = ("checkpoints", "best", "cache", "tensorboard")
#: MLflow's per-call limits of log_batch
_PARAMS_PER_CALL, _METRICS_PER_CALL = 100, 1000


class MlflowOptions(Options):
    """``[log.mlflow]``."""

    tracking_uri: str | None = Field(
        None, description="the tracking store; default: $MLFLOW_TRACKING_URI, else sqlite:///<output.root>/mlflow.db")
    experiment: str | None = Field(None, description="experiment name; default: the recipe's name")
    run_name: str | None = Field(None, description="MLflow run name; default: the run directory's name")
    log_artifacts: bool = Field(True, description="send the run directory's files at the end")
    log_model: bool = Field(True, description="log the exported model as an MLflow pyfunc model at the end")
    flush_secs: float = Field(5.0, gt=0, description="at most this many seconds between sends of per-step metrics")


class MlflowLogger:
    """Records a run in MLflow (see the module docstring).

    ``ft run --log mlflow`` builds one from ``[log.mlflow]``; a bare
    ``ft.Trainer`` takes one as a callback (without a recipe there is no
    model to export, and the experiment defaults to ``ftkit``). Nothing is
    written before the run starts; then ``tracking_uri``, ``run_id`` and,
    after the end, ``model_uri`` (``models:/ID``) say where it went.
    """

    def __init__(self, tracking_uri: str | None = None, *, experiment: str | None = None,
                 run_name: str | None = None, log_artifacts: bool = True, log_model: bool = True,
                 flush_secs: float = 5.0):
        self.options = MlflowOptions(tracking_uri=tracking_uri, experiment=experiment, run_name=run_name,
                                     log_artifacts=log_artifacts, log_model=log_model, flush_secs=flush_secs)
        self.tracking_uri: str | None = None
        self.run_id: str | None = None
        self.model_uri: str | None = None
        self._client: Any = None
        self._pending: list = []  # per-step metrics not sent yet (emptied in place: _abandon holds it)
        self._sent_at = 0.0
        self._unfinished: weakref.finalize | None = None

    @classmethod
    def from_options(cls, options: MlflowOptions, ctx: Any = None) -> MlflowLogger:
        """The ``LoggerSpec.build``: checks the library is there, writes nothing."""
        check_library("mlflow", "mlflow", NAME)
        return cls(**options.model_dump())

    def store(self, run: Any) -> str:
        """The tracking URI ``run`` is recorded in (see the module docstring)."""
        uri = self.options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return uri
        root = Path(run.run_dir).parent if run.run_dir else Path("runs")
        root.mkdir(parents=True, exist_ok=True)
        return "sqlite:///" + str((root / "mlflow.db").resolve())

    # -- the lifecycle hooks --------------------------------------------------

    def ft_run_start(self, run: Any) -> None:
        """Open (or, on resume, reopen) the MLflow run; record params and tags."""
        mlflow = import_library("mlflow", "mlflow", "mlflow", NAME)
        from mlflow.entities import Param, RunTag

        self.tracking_uri = self.store(run)
        try:
            with _sqlite_lock(self.tracking_uri):  # the first use creates the tables: one process at a time
                self._client = client = mlflow.MlflowClient(self.tracking_uri)
                experiment_id = self._experiment(client, run)
        except FtError:
            raise
        except Exception as exc:  # a bad URI, an unreachable server, a folder that is not there
            raise FtError(f"cannot open the MLflow tracking store {self.tracking_uri}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}", where="logger 'mlflow'",
                          hint="check [log.mlflow] tracking_uri (or $MLFLOW_TRACKING_URI); "
                               "nothing was trained yet") from exc
        tags = {**run_tags(run), **({"ftkit.run_dir": str(run.run_dir)} if run.run_dir else {})}
        self.run_id = self._resumed(client, experiment_id, run)
        known: dict[str, str] = {}
        if self.run_id:
            client.update_run(self.run_id, status="RUNNING")
            known = client.get_run(self.run_id).data.params
        else:
            name = self.options.run_name or (Path(run.run_dir).name if run.run_dir else None)
            self.run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        # until ft_run_end says otherwise, this run failed (the lifecycle has no failure hook)
        self._unfinished = weakref.finalize(self, _abandon, client, self.run_id, self._pending)
        params = [Param(k, _param_text(v)) for k, v in run_params(run).items() if k not in known]
        for i in range(0, len(params), _PARAMS_PER_CALL):
            client.log_batch(self.run_id, params=params[i:i + _PARAMS_PER_CALL])
        client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self._sent_at = time.monotonic()
        if not run.trainer.quiet:
            print(f"ft: mlflow: run {self.run_id} in {self.tracking_uri}")

    def ft_step_end(self, run: Any, step: int, metrics: dict[str, float]) -> None:
        """Queue the step's loss and learning rates; send when ``flush_secs`` passed."""
        self._queue(step_scalars(metrics), step)
        if time.monotonic() - self._sent_at >= self.options.flush_secs:
            self._send()

    def ft_epoch_end(self, run: Any, epoch: int, metrics: dict[str, float]) -> None:
        """The epoch's figures at step ``epoch``, sent with what is queued."""
        self._queue(epoch_scalars(metrics), epoch)
        self._send()

    def ft_run_end(self, run: Any, summary: dict[str, Any]) -> None:
        """Final metrics, files and model; then the MLflow run is FINISHED."""
        self._queue(final_scalars(summary), 0)
        self._send()
        run_dir = Path(run.run_dir) if run.run_dir else None
        if run_dir is not None and self.options.log_artifacts:
            for path in sorted(run_dir.iterdir()):
                if path.name.startswith(".") or path.name in SKIPPED:
                    continue
                if path.is_dir():
                    self._client.log_artifacts(self.run_id, str(path), path.name)
                else:
                    self._client.log_artifact(self.run_id, str(path))
        # a bare trainer's directory has no recipe.toml: nothing to rebuild the model from
        if run_dir is not None and self.options.log_model and (run_dir / "recipe.toml").exists():
            self.model_uri = log_model(self._client, self.run_id, run_dir, summary, self.tracking_uri)
            self._client.set_tag(self.run_id, "ftkit.model_uri", self.model_uri)
        self._client.set_terminated(self.run_id, "FINISHED")
        self._unfinished.detach()

    # -- the parts ------------------------------------------------------------

    def _experiment(self, client: Any, run: Any) -> str:
        """The experiment's id, created on first use."""
        from mlflow.exceptions import MlflowException

        name = self.options.experiment or (run.recipe.name if run.recipe is not None else "ftkit")
        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                return client.create_experiment(name, artifact_location=_artifact_root(self.tracking_uri))
            except MlflowException:  # another run created it meanwhile (parallel sweep trials)
                found = client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise FtError(f"the MLflow experiment {name!r} was deleted", where=f"{self.tracking_uri}",
                          hint=f"restore it (mlflow experiments restore --experiment-id {found.experiment_id}) "
                               "or choose another name: [log.mlflow] experiment = \"...\"")
        return found.experiment_id

    def _resumed(self, client: Any, experiment_id: str, run: Any) -> str | None:
        """A resumed ft run's MLflow run (by its ``ftkit.run_dir`` tag), if any."""
        if not run.trainer.step or not run.run_dir or "'" in str(run.run_dir):  # a quote would end the filter
            return None
        found = client.search_runs([experiment_id], f"tags.`ftkit.run_dir` = '{run.run_dir}'",
                                   order_by=["attributes.start_time DESC"], max_results=1)
        return found[0].info.run_id if found else None

    def _queue(self, scalars: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(_metric_key(k), v, now, step) for k, v in scalars.items()]

    def _send(self) -> None:
        _send(self._client, self.run_id, self._pending)
        self._sent_at = time.monotonic()

def _send(client: Any, run_id: str, pending: list) -> None:
    """Send the queued metrics and empty the queue (the same list: :func:`_abandon` holds it)."""
    for i in range(0, len(pending), _METRICS_PER_CALL):
        client.log_batch(run_id, metrics=pending[i:i + _METRICS_PER_CALL])
    pending.clear()


def _abandon(client: Any, run_id: str, pending: list) -> None:
    """A run that ended without ``ft_run_end``: keep what it had queued, mark it FAILED."""
    try:
        _send(client, run_id, pending)
    finally:
        client.set_terminated(run_id, "FAILED")


@contextmanager
def _sqlite_lock(uri: str):
    """Hold an exclusive lock on a SQLite store's folder: two runs that
    open a new store at once (parallel sweep trials) would both create its
    tables, and one would fail. Other stores, or no ``fcntl``: no lock."""
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None
    if fcntl is None or not uri.startswith("sqlite:///"):
        yield
        return
    folder = Path(uri[len("sqlite:///"):]).resolve().parent
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _artifact_root(uri: str) -> str | None:
    """``mlartifacts/`` beside a SQLite store's file; None (the store's
    default) for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()


def _param_text(value: Any) -> str:
    """A param's value as MLflow takes it: text, cut to MLflow's limit with a marker."""
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    text = str(value)
    if len(text) <= MAX_PARAM_VAL_LENGTH:
        return text
    marker = f"...[truncated {len(text)} chars]"
    return text[:MAX_PARAM_VAL_LENGTH - len(marker)] + marker


def _metric_key(name: str) -> str:
    """MLflow allows letters, digits and ``_-./ :`` in a key (a group named ``a+b`` becomes ``a_b``)."""
    return re.sub(r"[^\w\-./ :]", "_", name)
