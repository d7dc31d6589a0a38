"""The ``tensorboard`` logger: a run's curves, settings and model card as
TensorBoard event files (``torch.utils.tensorboard.SummaryWriter``; needs
``pip install "ftkit[tensorboard]"``).

What it writes, at which step (the optimizer step, so every curve shares
one x axis; names in :mod:`ft.plugins.loggers.records`):

* every ``train.log_every`` steps: ``train/loss``, ``lr`` and ``lr/GROUP``;
* every epoch, at the step it ended on: ``val/NAME``, ``train/epoch_loss``,
  ``perf/examples_per_s`` (and the other speed figures), ``epoch``;
  then the pending events go to disk;
* at the end: the final evaluation as ``final/test_NAME``, ``final/val_NAME``,
  the resolved recipe as hparams (flat dotted keys) against those figures,
  and MODEL_CARD.md as the text ``model_card``; then the file is closed.

Where: ``<run_dir>/tensorboard`` by default, so ``tensorboard --logdir
runs/`` shows every run; with ``dir`` set, ``<dir>/<run directory's
name>``. A bare ``ft.Trainer`` without a run directory writes to
``<dir or ./runs>/tensorboard-<time>``. A resumed run purges what its
first life logged after the checkpoint it resumes from, so no step is
shown twice.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from ft.errors import FtError
from ft.specs import Options, RecipePath

from .extras import check_library, import_library
from .records import epoch_scalars, final_scalars, run_params, step_scalars

NAME = "tensorboard"


class TensorBoardOptions(Options):
    """``[log.tensorboard]``."""

    dir: RecipePath | None = Field(
        None, description="a folder under which each run writes <dir>/<run name>/ (relative to the recipe); "
                          "default: <run_dir>/tensorboard")
    flush_secs: int = Field(30, ge=1, description="seconds between writes of pending events to disk "
                                                  "(every epoch end writes them too)")


class TensorBoardLogger:
    """Records a run for TensorBoard (see the module docstring).

    ``ft run --log tensorboard`` builds one from ``[log.tensorboard]``; a
    bare ``ft.Trainer`` takes one as a callback::

        Trainer(model, train, val, callbacks=[TensorBoardLogger("tb")])

    ``dir``: the folder each run gets a sub-folder of (None: see the
    module docstring); ``flush_secs``: how often pending events reach the
    disk. Nothing is written before the run starts. ``logdir`` is the
    folder of the event files once it has.
    """

    def __init__(self, dir: str | Path | None = None, *, flush_secs: int = 30):
        self.dir = Path(dir) if dir is not None else None
        self.flush_secs = flush_secs
        self.logdir: Path | None = None
        self._writer: Any = None
        self._step = 0  # the last optimizer step seen: where the run-end records go

    @classmethod
    def from_options(cls, options: TensorBoardOptions, ctx: Any = None) -> TensorBoardLogger:
        """The ``LoggerSpec.build``: checks the library is there, writes nothing."""
        check_library("tensorboard", "tensorboard", NAME)
        return cls(options.dir, flush_secs=options.flush_secs)

    def where(self, run: Any) -> Path:
        """The folder of ``run``'s event files."""
        run_dir = Path(run.run_dir) if run.run_dir else None
        name = run_dir.name if run_dir else f"tensorboard-{datetime.now():%Y%m%d-%H%M%S}"
        if self.dir is not None:
            return self.dir / name
        return run_dir / "tensorboard" if run_dir else Path("runs") / name

    # -- the lifecycle hooks --------------------------------------------------

    def ft_run_start(self, run: Any) -> None:
        """Open the event file (a resumed run: purge what followed its checkpoint)."""
        writer_module = import_library("torch.utils.tensorboard", "tensorboard", "tensorboard", NAME)
        self.logdir = self.where(run)
        self._step = run.trainer.step
        # a resume replays the steps after its checkpoint; TensorBoard hides the first life's copies
        purge = self._step + 1 if self._step else None
        try:
            self._writer = writer_module.SummaryWriter(str(self.logdir), flush_secs=self.flush_secs,
                                                       purge_step=purge)
        except OSError as exc:
            raise FtError(f"cannot write TensorBoard's event files: {exc.strerror or exc}", where=str(self.logdir),
                          hint="choose a folder you can write to: [log.tensorboard] dir = \"...\"; "
                               "nothing was trained yet") from exc
        # a run that fails never reaches ft_run_end: its pending events still reach the disk
        weakref.finalize(self, self._writer.close)
        if not run.trainer.quiet:
            every_run = self.dir or (Path(run.run_dir).parent if run.run_dir else self.logdir.parent)
            print(f"ft: tensorboard: writing to {self.logdir} (see every run: tensorboard --logdir {every_run})")

    def ft_step_end(self, run: Any, step: int, metrics: dict[str, float]) -> None:
        """The training loss and learning rates at optimizer step ``step``."""
        self._step = step
        for tag, value in step_scalars(metrics).items():
            self._writer.add_scalar(tag, value, step)

    def ft_epoch_end(self, run: Any, epoch: int, metrics: dict[str, float]) -> None:
        """The epoch's figures at the step it ended on; then to disk."""
        step = int(metrics.get("step", run.trainer.step))
        self._step = step
        self._writer.add_scalar("epoch", epoch, step)
        for tag, value in epoch_scalars(metrics).items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def ft_run_end(self, run: Any, summary: dict[str, Any]) -> None:
        """Final figures, hparams and the model card; then close the file."""
        from torch.utils.tensorboard.summary import hparams

        step = max(self._step, int(summary.get("steps") or 0))
        final = {f"final/{name}": value for name, value in final_scalars(summary).items()}
        for tag, value in final.items():
            self._writer.add_scalar(tag, value, step)
        # hparams() (not SummaryWriter.add_hparams, which opens a second run in a sub-folder) keeps the
        # settings in this run, where the HParams tab pairs them with the final/ scalars above
        for record in hparams(run_params(run), final):
            self._writer.file_writer.add_summary(record)
        card = Path(run.run_dir) / "MODEL_CARD.md" if run.run_dir else None
        if card is not None and card.exists():
            self._writer.add_text("model_card", card.read_text(encoding="utf-8"), step)
        self.close()

    def close(self) -> None:
        """Write what is pending and close the event file (safe to repeat)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
