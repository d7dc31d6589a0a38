"""Rotten Tomatoes with MiniLM: test accuracy, trainable weights, peak memory
and wall time per way of training, at the same budget (data and epochs).

    python benchmarks/nlp_table.py                          # the recipe's data and 3 epochs
    python benchmarks/nlp_table.py --limit 2000 --epochs 1  # a quick look

Rows (freeze strategies): ``full`` (the recipe as written), ``lora``
(rank-8 adapters on every linear layer), ``bitfit`` (biases only),
``linear_probe`` (frozen backbone; its features are computed once and cached),
``gradual_unfreeze`` (head first, then one layer group more per epoch,
from the top), ``lp_ft`` (one epoch of probing, then everything at the
recipe's rate) and ``l2sp`` (full, pulled toward the pretrained weights). Each row is ``ft run recipes/sentiment_rotten_tomatoes.toml``
with overrides in a fresh subprocess, so its peak resident memory (ru_maxrss)
is its own; the fixed 1,000-snippet test split is the same for every row.
The table and the per-row settings are printed and saved as JSON. Times
compare only between rows of one invocation on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "sentiment_rotten_tomatoes.toml"

#: row -> overrides of the recipe; learning rates suited to what trains
ROWS: dict[str, dict] = {
    "full": {},
    "lora": {"freeze.strategy": "lora", "freeze.r": 8, "freeze.alpha": 16, "optim.lr": 5e-4},
    "bitfit": {"freeze.strategy": "bitfit", "optim.lr": 1e-3},
    "linear_probe": {"freeze.strategy": "linear_probe", "optim.lr": 3e-3},
    "gradual_unfreeze": {"freeze.strategy": "gradual_unfreeze", "freeze.every": 1},
    # one epoch probing the head at the probe's rate, then everything at the recipe's 8e-5
    "lp_ft": {"freeze.strategy": "lp_ft", "freeze.probe_epochs": 1, "optim.lr": 3e-3,
              "freeze.ft_lr_mult": 8e-5 / 3e-3, "freeze.head_ft_lr_mult": 8e-5 / 3e-3},
    "l2sp": {"freeze.strategy": "l2sp"},
}


def run_one(recipe: Path, overrides: dict, out: Path) -> None:
    """Child process: one ``ft.run``, its figures written as JSON to ``out``."""
    import ft

    t0 = time.perf_counter()
    result = ft.run(recipe, overrides, quiet=True)
    wall = time.perf_counter() - t0
    params = result.summary["params"]
    out.write_text(json.dumps({
        "test_accuracy": result.metrics.get("test", {}).get("accuracy"),
        "val_accuracy": result.metrics.get("val", {}).get("accuracy"),
        "trainable": params["trainable"], "total": params["total"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": round(wall, 1), "train_s": result.summary["train_seconds"], "run_dir": str(result.run_dir),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description="nlp: ways of fine-tuning MiniLM on Rotten Tomatoes at one budget")
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--limit", type=int, default=None, help="training snippets (val and test stay the same)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--only", nargs="*", choices=list(ROWS), help="run only these rows")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in each run (0: torch's default)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: a temp folder)")
    parser.add_argument("--one", nargs=2, metavar=("OVERRIDES_JSON", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.recipe, json.loads(args.one[0]), Path(args.one[1]))
        return

    base: dict = {"train.time_limit": None}  # the same epochs for every row
    if args.limit:
        base["data.limit"] = args.limit
    if args.epochs:
        base["train.epochs"] = args.epochs
    work = Path(tempfile.mkdtemp(prefix="nlp_table_"))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    results = []
    for name, overrides in ROWS.items():
        if args.only and name not in args.only:
            continue
        settings = {**base, **overrides, "output.dir": str(work / name), "train.progress": False}
        settings = {k: v for k, v in settings.items() if v is not None or k == "train.time_limit"}
        out = work / f"{name}.json"
        child = [sys.executable, __file__, "--recipe", str(args.recipe), "--one", json.dumps(settings), str(out)]
        done = subprocess.run(child, env=env)
        if done.returncode != 0:
            print(f"{name:>16}: failed (exit {done.returncode})", flush=True)
            continue
        row = {"row": name, **json.loads(out.read_text()), "overrides": settings}
        results.append(row)
        print(f"{name:>16}: test accuracy {row['test_accuracy']:.4f}  trainable {row['trainable']:,} "
              f"({100 * row['trainable'] / row['total']:.2f} %)  peak RSS {row['peak_rss_mb']:.0f} MB  "
              f"wall {row['wall_s']:.0f} s", flush=True)

    print("\n| way of training | test accuracy | trainable weights | peak memory | wall time |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['row']} | {100 * r['test_accuracy']:.2f} % | {r['trainable']:,} "
              f"({100 * r['trainable'] / r['total']:.2f} %) | {r['peak_rss_mb']:.0f} MB | {r['wall_s']:.0f} s |")
    path = args.out or work / "nlp_table.json"
    path.write_text(json.dumps({"limit": args.limit, "epochs": args.epochs, "rows": results}, indent=2))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
