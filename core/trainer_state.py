"""The trainer's state, saved and put back: checkpoints during a run (with
every rank's RNG, the half-epoch sums, the monitor and the NaN-step counts),
a resume from one, the best weights, and an in-memory snapshot that tools
such as ``ft lr-find`` take and restore.

:class:`_TrainerState` is a base of :class:`ft.Trainer` (its methods are the
trainer's, documented with it); the loop and evaluation live in trainer.py,
the setup in trainer_setup.py, the file formats in checkpoint.py.
"""

from __future__ import annotations

from pathlib import Path

from .checkpoint import TrainingSnapshot, latest_checkpoint, load_training_checkpoint
from .errors import FtError


class _TrainerState:
    """Checkpoints and snapshots of :class:`ft.Trainer` (see the module doc)."""

    def snapshot(self) -> TrainingSnapshot:
        """Everything training changes (weights, optimizer, schedule,
        scaler, weight average, modes, RNG, step and NaN counts), for
        :meth:`restore`."""
        self.setup()
        return TrainingSnapshot(self.parts, self.device, {"step": self.step, "nonfinite": self.nonfinite.state(),
                                                          "nonfinite_limit": self.nonfinite.limit})

    def restore(self, snapshot: TrainingSnapshot) -> None:
        """Put the trainer back as :meth:`snapshot` found it."""
        snapshot.put_back(self.parts, self.device)
        self.step = snapshot.counters["step"]
        self.nonfinite.load(snapshot.counters["nonfinite"])
        self.nonfinite.limit = snapshot.counters["nonfinite_limit"]

    def _save_best(self, metrics: dict) -> None:
        self.run.save_best(self.model, metrics, self.dist, self.sharded)

    def _save_checkpoint(self, epoch: int, batch: int, elapsed: float) -> None:
        name = f"epoch-{epoch}" if batch == 0 else f"epoch-{epoch}-batch-{batch}"
        meta = {"epoch": epoch, "batch": batch, "step": self.step, "elapsed": elapsed,
                "history": self.history, **self.nonfinite.state(), **self.monitor.state()}
        path = self.run.save_checkpoint(name, self.parts, meta, self.dist,
                                        self.device, self.cfg.keep_checkpoints,
                                        rank_state=self._epoch_sums if batch else None)
        self._emit("ft_checkpoint_saved", run=self.info, path=path, epoch=epoch)

    def _restore(self, resume: bool | str | Path) -> tuple[int, int, float]:
        if isinstance(resume, (str, Path)):
            path = Path(resume)
        else:
            if self.run_dir is None:
                raise FtError("cannot resume: this trainer has no run directory")
            path = latest_checkpoint(self.run_dir)
            if path is None:
                raise FtError("no checkpoint to resume from", where=str(self.run_dir),
                              hint="start the run without --resume")
        meta, self._resumed = load_training_checkpoint(path, self.parts, self.dist, self.device)
        self.step = meta["step"]
        self.history = meta["history"]
        self.nonfinite.load(meta)
        self.monitor.load(meta)
        self._mults = self._group_multipliers()
        return meta["epoch"], meta["batch"], meta["elapsed"]
