"""Accent-ID table: every method on the same corpus and test split.

Rows: MFCC statistics + logistic regression (classical), ``logmel_cnn`` from
scratch, a linear probe on the recipe's pretrained encoder, the recipe's
fine-tune (``--recipe``, default recipes/speech_accent.toml), and every other
registered freeze strategy on the same recipe (a strategy that cannot split
this backbone is reported as n/a with its error). Each row prints test
accuracy, validation accuracy, trainable weights and wall time; the epoch
budget is the recipe's unless --epochs. ``--seeds 0 1 2`` runs every ftkit
row once per seed (``train.seed``) and prints the mean and the range.

    .venv/bin/python benchmarks/speech_accent_table.py                 # full table (hours on 2 cores)
    .venv/bin/python benchmarks/speech_accent_table.py --epochs 1 --limit 8   # smoke test, a minute or two
    .venv/bin/python benchmarks/speech_accent_table.py --methods mfcc_lr linear_probe full
    .venv/bin/python benchmarks/speech_accent_table.py --methods full --seeds 0 1 2
    .venv/bin/python benchmarks/speech_accent_table.py --recipe recipes/speech_accent_resemblyzer.toml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "speech_accent.toml"
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: the linear probe trains only the head: no augmentation and a centred crop make the
#: training inputs fixed, so the engine caches the frozen features once
PROBE = {"freeze": {"strategy": "linear_probe"}, "data": {"augment": False, "random_crop": False},
         "optim": {"lr": 1e-2, "head_lr_mult": 1.0}, "head": {"input_norm": "batch"}, "train": {"epochs": 20}}
#: the from-scratch baseline: the recipe's data and loop, a small CNN instead of the encoder
CNN = {"backbone": {"name": "logmel_cnn"}, "optim": {"lr": 3e-3, "head_lr_mult": 1.0}}


def load_recipe_dict(path: Path) -> dict:
    """The recipe as a dict with its data path made absolute (dict recipes
    resolve paths against the current folder)."""
    with path.open("rb") as fh:
        recipe = tomllib.load(fh)
    data_path = Path(recipe["data"]["path"])
    if not data_path.is_absolute():
        recipe["data"]["path"] = str((path.parent / data_path).resolve())
    return recipe


def merged(recipe: dict, changes: dict, replace: tuple[str, ...] = ()) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in recipe.items()}
    for section, values in changes.items():
        out[section] = dict(values) if section in replace else {**out.get(section, {}), **values}
    return out


def ft_row(name: str, recipe: dict, args, seed: int | None = None) -> dict:
    import ft

    recipe = merged(recipe, {"output": {"dir": str(args.out / (name if seed is None else f"{name}-seed{seed}"))}})
    if seed is not None:
        recipe = merged(recipe, {"train": {"seed": seed}})
    if args.epochs:
        recipe = merged(recipe, {"train": {"epochs": args.epochs}})
    if args.limit:
        recipe = merged(recipe, {"data": {"limit_per_class": args.limit}})
    t0 = time.perf_counter()
    try:
        result = ft.run(recipe, quiet=not args.verbose)
    except ft.FtError as exc:
        return {"method": name, "error": str(exc).splitlines()[0]}
    return {"method": name, "test_accuracy": result.metrics["test"]["accuracy"],
            "val_accuracy": result.metrics["val"]["accuracy"], "seconds": time.perf_counter() - t0,
            "train_seconds": result.summary["train_seconds"], "epochs": result.summary["epochs_run"],
            "trainable": result.summary["params"]["trainable"], "note": result.summary.get("note"),
            "strategy": recipe["freeze"]["strategy"], "backbone": recipe["backbone"]["name"], "seed": seed}


def seeded_row(name: str, recipe: dict, args) -> dict:
    """One row: a single run, or the mean (and range) over ``--seeds``."""
    if not args.seeds:
        return ft_row(name, recipe, args)
    runs = [ft_row(name, recipe, args, seed) for seed in args.seeds]
    for run in runs:
        print("      " + json.dumps(run), flush=True)
    if any("error" in r for r in runs):
        return next(r for r in runs if "error" in r)
    row = dict(runs[0], seed=list(args.seeds))
    for key in ("test_accuracy", "val_accuracy", "seconds"):
        values = [r[key] for r in runs]
        row[key] = sum(values) / len(values)
        row[key + "_range"] = (min(values), max(values))
    return row


def rows(args) -> list[dict]:
    import ft
    from ft.recipe import OptimSection

    recipe = load_recipe_dict(args.recipe)
    strategy = recipe.get("freeze", {}).get("strategy", "full")
    plans: dict[str, dict | None] = {
        "mfcc_lr": None,
        "logmel_cnn": merged(merged(recipe, CNN, replace=("backbone",)), {"freeze": {"strategy": "full"}},
                             replace=("freeze",)),
        "linear_probe": merged(recipe, PROBE, replace=("freeze",)),
        "full": merged(recipe, {"freeze": {"strategy": "full"}}, replace=("freeze",)),
    }
    if strategy != "full":
        plans[f"recipe ({strategy})"] = recipe
    # lp_ft's default fine-tuning phase runs at 0.1x the rates; this row keeps the recipe's rates after the probe
    plans["lp_ft_recipe_lr"] = merged(recipe, {"freeze": {"strategy": "lp_ft", "probe_epochs": 2, "ft_lr_mult": 1.0,
                                                          "head_ft_lr_mult": 1.0}}, replace=("freeze",))
    # freeze the stem and the first half of the encoder's layer groups (needs its n)
    plans["freeze_bottom"] = merged(recipe, {"freeze": {"strategy": "freeze_bottom", "n": 2}}, replace=("freeze",))
    # LoRA usually wants about 10x full fine-tuning's rate; the head keeps the recipe's own rate
    optim = OptimSection(**recipe.get("optim", {}))  # the recipe's rates, with ftkit's defaults where it has none
    plans["lora_lr10"] = merged(merged(recipe, {"freeze": {"strategy": "lora"}}, replace=("freeze",)),
                                {"optim": {"lr": optim.lr * 10, "head_lr_mult": optim.head_lr_mult / 10}})
    registry = ft.get_registry()
    for name in sorted(registry.entries["ft_freeze_strategies"]):
        if name not in plans and name not in ("full", "linear_probe", strategy):
            plans[name] = merged(recipe, {"freeze": {"strategy": name}}, replace=("freeze",))
    wanted = args.methods or list(plans)
    unknown = [m for m in wanted if m not in plans]
    if unknown:
        sys.exit(f"unknown method(s) {unknown}; choose from {list(plans)}")
    out = []
    for name in wanted:
        print(f"--- {name}", flush=True)
        if name == "mfcc_lr":
            import speech_mfcc_baseline

            t0 = time.perf_counter()
            r = speech_mfcc_baseline.run(Path(recipe["data"]["path"]), args.limit, quiet=True)
            row = {"method": name, "test_accuracy": r["test_accuracy"], "val_accuracy": r["val_accuracy"],
                   "seconds": time.perf_counter() - t0}
        else:
            row = seeded_row(name, plans[name], args)
        print("    " + json.dumps(row), flush=True)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs for every ft row")
    parser.add_argument("--limit", type=int, default=None, help="at most N clips per class in each split")
    parser.add_argument("--methods", nargs="*", default=None, help="rows to run (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=None,
                        help="run every ftkit row once per train.seed and report mean and range")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "speech_accent_table",
                        help="run directories go under here (replaced)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument("--verbose", action="store_true", help="show each run's progress")
    args = parser.parse_args(argv)
    if args.out.exists():
        import shutil

        shutil.rmtree(args.out)
    import torch

    table = rows(args)
    print(f"\nAccent ID, {args.recipe.name}, {torch.get_num_threads()} threads"
          + (f", epochs={args.epochs}" if args.epochs else "") + (f", limit={args.limit}/class" if args.limit else ""))
    print(f"{'method':<28}{'test acc':>10}{'val acc':>10}{'trainable':>12}{'wall s':>10}")
    for r in table:
        if "error" in r:
            print(f"{r['method']:<28}{'n/a':>10}{'':>10}{'':>12}{'':>10}  {r['error'][:90]}")
            continue
        spread = ""
        if "test_accuracy_range" in r:
            (tl, th), (vl, vh) = r["test_accuracy_range"], r["val_accuracy_range"]
            spread = f"  test {tl:.4f}..{th:.4f}, val {vl:.4f}..{vh:.4f} over seeds {r['seed']}"
        print(f"{r['method']:<28}{r['test_accuracy']:>10.4f}{r['val_accuracy']:>10.4f}{(format(r['trainable'], ',') if 'trainable' in r else '-'):>12}"
              f"{r['seconds']:>10.1f}{spread}" + (f"  ({r['note']})" if r.get("note") else ""))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
