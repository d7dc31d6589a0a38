"""What TensorBoard logging of every step costs a real fine-tune.

    python benchmarks/logging_overhead.py [--rounds 4] [--limit-per-class 200] [--epochs 1] [--threads 1]
    python benchmarks/logging_overhead.py --per-step [--rounds 4]   # the logger's own cost per step, in ms

The run: recipes/fashion_mnist.toml (EfficientNet-Lite0, every weight
trains) cut down to ``--limit-per-class`` training images per class (200:
2,000 images, 32 steps of 64, about 50 s a run on a busy 2-core CPU with
one thread; 100 took 25-40 s), validation on 200 images, no test scoring.
Two ways, in ONE process (machines here are noisy, so only side-by-side
ratios mean anything), alternating which goes first each round:

* ``none``: no logger (nobody listens to ``ft_step_end``, so the trainer
  skips the per-step figures entirely);
* ``tensorboard``: ``--log tensorboard`` with ``train.log_every = 1``: a
  loss and every group's learning rate written every optimizer step, the
  epoch's figures, hparams and the model card at the end.

Each run is a whole ``ft.run`` (model and data built, trained, validated,
run directory written), timed by wall clock and by the process's CPU time
(the event writer's thread included); the training time the summary reports
is shown too. Goal (issue 16): tensorboard/none <= 1.02. Nothing is
asserted: the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import ft

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fashion_mnist.toml"
WAYS = {"none": [], "tensorboard": ["tensorboard"]}


def overrides(args: argparse.Namespace, root: str) -> dict:
    return {"data.limit_per_class": args.limit_per_class, "data.val_size": 200, "train.epochs": args.epochs,
            "train.log_every": 1, "train.progress": False, "output.root": root}


def timed_run(way: str, settings: dict) -> dict[str, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    result = ft.run(RECIPE, settings, loggers=WAYS[way], quiet=True, test=False)
    return {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
            "train": result.summary["train_seconds"], "steps": result.summary["steps"]}


def per_step_cost(rounds: int, steps: int = 2000) -> float:
    """The logger's own cost per step, in ms: a bare ``ft.Trainer`` on a
    linear model (a step takes microseconds, so the difference is the
    logger's), ``steps`` steps with the tensorboard logger at every step
    against none, alternating, the median of ``rounds``."""
    from torch import nn
    from torch.utils.data import TensorDataset

    from ft.plugins.loggers import TensorBoardLogger

    x = torch.randn(steps * 8, 4)
    data = TensorDataset(x, x.sum(1, keepdim=True))
    costs = []
    with tempfile.TemporaryDirectory(prefix="ft-logging-step-") as root:
        for r in range(rounds):
            seconds = {}
            for way in (["none", "tensorboard"] if r % 2 == 0 else ["tensorboard", "none"]):
                callbacks = [TensorBoardLogger(Path(root) / f"r{r}")] if way == "tensorboard" else []
                trainer = ft.Trainer(nn.Linear(4, 1), data, None, loss_fn=nn.functional.mse_loss, quiet=True,
                                     callbacks=callbacks, train={"epochs": 1, "batch_size": 8, "log_every": 1,
                                                                 "progress": False, "checkpoint": False})
                seconds[way] = trainer.fit().train_seconds
            costs.append((seconds["tensorboard"] - seconds["none"]) / steps * 1000)
    return statistics.median(costs)


def main() -> None:
    parser = argparse.ArgumentParser(description="TensorBoard logging every step vs no logger, on a real fine-tune")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--limit-per-class", type=int, default=200, help="training images per class (10 classes)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--per-step", action="store_true",
                        help="only the logger's own cost per step, on a bare trainer with a linear model")
    args = parser.parse_args()
    if args.per_step:
        print(f"tensorboard logger: {per_step_cost(args.rounds):.3f} ms per step (median of {args.rounds} rounds "
              f"of 2,000 steps, bare ft.Trainer, linear model)")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="ft-logging-overhead-") as root:
        settings = overrides(args, root)
        for way in WAYS:  # warm-up: imports, the data files' decoding, the first allocations
            ft.run(RECIPE, {**settings, "train.max_steps": 2}, loggers=WAYS[way], quiet=True, test=False)
        runs: dict[str, list[dict]] = {way: [] for way in WAYS}
        ways = list(WAYS)
        for r in range(args.rounds):
            for way in ways[r % 2:] + ways[:r % 2]:  # each way goes first every other round
                runs[way].append(timed_run(way, settings))
            print(f"round {r + 1}: " + "  ".join(
                f"{w} wall {runs[w][-1]['wall']:.2f} s cpu {runs[w][-1]['cpu']:.2f} s train {runs[w][-1]['train']:.2f} s"
                for w in ways), flush=True)
    steps = runs["tensorboard"][0]["steps"]
    print(f"setting: {RECIPE.name}, {args.limit_per_class} images/class, {args.epochs} epoch(s), {steps} steps, "
          f"train.log_every=1, {torch.get_num_threads()} thread(s), {args.rounds} rounds")
    for figure in ("wall", "cpu", "train"):
        a, b = [x[figure] for x in runs["tensorboard"]], [x[figure] for x in runs["none"]]
        ratios = [x / y for x, y in zip(a, b)]
        print(f"{figure} seconds per run: tensorboard median {statistics.median(a):.2f}, none median "
              f"{statistics.median(b):.2f}; ratio tensorboard/none median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f}); ratio of medians "
              f"{statistics.median(a) / statistics.median(b):.3f}")


if __name__ == "__main__":
    main()
