"""Fashion-MNIST with EfficientNet-Lite0: test accuracy and wall time per way
of training, at the same budget (the same epochs and data).

    python benchmarks/vision_table.py                       # full data, the recipe's 2 epochs
    python benchmarks/vision_table.py --limit-per-class 300 --epochs 1   # a quick look

Rows: ``scratch`` (random weights, everything trains), ``linear_probe``
(frozen backbone, augmentation off so its features are cached), ``full``
(the recipe as written), ``lp_ft`` (probe first, then fine-tune), and the
rest of the freeze library: ``gradual_unfreeze`` (one group more per epoch),
``bitfit`` (biases, norms' shifts and the head), ``lora`` (adapters on the
pointwise convolutions: this backbone has no nn.Linear layers, and peft
cannot merge adapters of its depthwise ones) and ``l2sp``. A strategy
row appears only when that strategy is registered. Every row is ``ft.run`` on
recipes/fashion_mnist.toml with overrides, one after another in this process;
the table and the per-row settings are printed and saved as JSON. Times are
only comparable between rows of one invocation on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import ft

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fashion_mnist.toml"


def rows(args, strategies: set[str]) -> list[tuple[str, dict]]:
    probe_lr = {"optim.lr": args.probe_lr}
    out = [
        ("scratch", {"backbone.weights": "random", "optim.lr": args.scratch_lr}),
        ("linear_probe", {"freeze.strategy": "linear_probe", "data.augment": False, **probe_lr}),
        ("full", {}),
    ]
    if "lp_ft" in strategies and args.epochs >= 2:
        # the probe trains at lr x (head), then everything at the recipe's lr: ft_lr_mult = recipe lr / probe lr
        out.append(("lp_ft", {"freeze.strategy": "lp_ft", "freeze.probe_epochs": 1, **probe_lr,
                              "freeze.ft_lr_mult": args.lr / args.probe_lr,
                              "freeze.head_ft_lr_mult": args.lr / args.probe_lr}))
    # the rest of the freeze library at the recipe's learning rate (issue 3's strategy table)
    extra = {"gradual_unfreeze": {"freeze.every": 1}, "bitfit": {"optim.lr": args.probe_lr}, "lora": {},
             "l2sp": {}}
    out += [(name, {"freeze.strategy": name, **o}) for name, o in extra.items() if name in strategies]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="vision: scratch vs linear probe vs fine-tuning at one budget")
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--limit-per-class", type=int, default=None, help="images per class in each split")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate (the recipe's)")
    parser.add_argument("--probe-lr", type=float, default=1e-2, help="learning rate of a frozen-backbone head")
    parser.add_argument("--scratch-lr", type=float, default=3e-3)
    parser.add_argument("--only", nargs="*", help="run only these rows")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: a temp folder)")
    args = parser.parse_args()

    strategies = set(ft.get_registry().entries["ft_freeze_strategies"])
    base = {"train.epochs": args.epochs, "optim.lr": args.lr, "train.time_limit": None}  # the same epochs for all
    if args.limit_per_class:
        base["data.limit_per_class"] = args.limit_per_class
    work = Path(tempfile.mkdtemp(prefix="vision_table_"))
    results = []
    for name, overrides in rows(args, strategies):
        if args.only and name not in args.only:
            continue
        settings = {**base, **overrides, "output.dir": str(work / name)}
        t0 = time.perf_counter()
        try:
            result = ft.run(args.recipe, settings, quiet=True)
        except ft.FtError as exc:  # a strategy that cannot apply to this backbone: a row that says why
            print(f"{name:>16}: n/a: {str(exc).splitlines()[0]}", flush=True)
            results.append({"row": name, "error": str(exc).splitlines()[0], "overrides": settings})
            continue
        wall = time.perf_counter() - t0
        test = result.metrics.get("test", {})
        results.append({"row": name, "test_accuracy": test.get("accuracy"), "wall_s": round(wall, 1),
                        "train_s": result.summary["train_seconds"], "overrides": settings,
                        "run_dir": str(result.run_dir)})
        print(f"{name:>13}: test accuracy {test.get('accuracy', float('nan')):.4f}  wall {wall:7.1f} s  "
              f"(training {result.summary['train_seconds']:.1f} s)", flush=True)

    print("\n| way of training | test accuracy | wall time |\n|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['row']} | n/a: {r['error']} | |")
        else:
            print(f"| {r['row']} | {100 * r['test_accuracy']:.2f} % | {r['wall_s']:.0f} s |")
    out = args.out or work / "vision_table.json"
    out.write_text(json.dumps({"epochs": args.epochs, "limit_per_class": args.limit_per_class,
                               "results": results}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
