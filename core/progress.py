"""Progress output: a live bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """Per-epoch progress; ``update`` is cheap enough to call every step."""

    def __init__(self, enabled: bool | str = "auto", log_every: int = 50, quiet: bool = False):
        tty = sys.stdout.isatty()
        self.live = (enabled is True or (enabled == "auto" and tty)) and not quiet
        self.quiet = quiet
        self.log_every = log_every
        self._bar = None

    def start_epoch(self, epoch: int, epochs: int, total_steps: int) -> None:
        self.epoch, self.epochs, self.total = epoch, epochs, total_steps
        self.t0 = time.perf_counter()
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

            self._bar = Bar(TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("{task.fields[info]}"), transient=True)
            self._bar.start()
            self._task = self._bar.add_task("train", total=total_steps, info="")

    def update(self, done: int, loss: float | None = None, lr: float | None = None) -> None:
        if self._bar is not None:
            info = f"loss {loss:.4f}" if loss is not None else ""
            self._bar.update(self._task, completed=done, info=info)
        elif not self.quiet and loss is not None and done % self.log_every == 0:
            rate = done / max(1e-9, time.perf_counter() - self.t0)
            print(f"epoch {self.epoch}/{self.epochs} step {done}/{self.total} loss {loss:.4f} "
                  f"lr {lr:.2e} {rate:.1f} steps/s", flush=True)

    def needs_loss(self, done: int) -> bool:
        """Whether ``update`` will show the loss now (avoids a sync per step)."""
        return self._bar is not None or (not self.quiet and done % self.log_every == 0)

    def end_epoch(self, metrics: dict) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if not self.quiet:
            shown = "  ".join(_shown(k, v) for k, v in metrics.items() if k not in ("time",))
            print(shown, flush=True)

    def message(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)


def _shown(key: str, value) -> str:
    """One ``key value`` pair of an epoch line; a learning rate such as 5e-5 keeps its digits."""
    if not isinstance(value, float):
        return f"{key} {value}"
    return f"{key} {value:.2e}" if key == "lr" else f"{key} {value:.4f}"
