"""Steps whose gradients hold NaN/inf: skipped, counted, and a limit on how
many in a row before the run stops (what GradScaler does for fp16, for
every precision)."""

from __future__ import annotations

from .errors import FtError


class NonfiniteSteps:
    """The run's count of skipped steps and the current streak of them.

    Its :meth:`state` goes into every checkpoint, so a resumed run counts on
    from where it stopped.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.skipped = 0  # over the run
        self.in_row = 0

    def record(self, finite: bool) -> bool:
        """Fold in one step; True if this was one non-finite step too many."""
        if finite:
            self.in_row = 0
            return False
        self.skipped += 1
        self.in_row += 1
        return self.in_row > self.limit

    def error(self, epoch: int, step: int, lr: float, where: str) -> FtError:
        """The message that stops a run whose steps keep going non-finite."""
        return FtError(
            f"training diverged: the loss or the gradients were NaN/inf in {self.in_row} steps in a row "
            f"(epoch {epoch}, step {step}); those steps were skipped and nothing of them was saved",
            where=where,
            hint=f"lower optim.lr (now {lr:g}), set train.clip_grad_norm, or look for extreme values in the data; "
                 f"the last checkpoint is intact (--resume continues from it); train.max_nonfinite_steps = "
                 f"{self.limit} sets how many such steps are skipped first")

    def state(self) -> dict:
        return {"skipped_steps": self.skipped, "nonfinite_in_row": self.in_row}

    def load(self, state: dict) -> None:
        self.skipped = state.get("skipped_steps", 0)
        self.in_row = state.get("nonfinite_in_row", 0)
