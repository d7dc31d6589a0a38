"""Does ``ft lr-find``'s suggestion train as well as the recipe's own rate?

For the vision recipe (recipes/fashion_mnist.toml) and the NLP recipe
(recipes/sentiment_rotten_tomatoes.toml): run the learning-rate range test,
then train the recipe twice, at the suggested ``optim.lr`` and at its own,
and print one table: recipe, recipe lr, suggested lr, test accuracy at each,
wall time of the test and of each run.

    python benchmarks/lr_find_table.py                       # the recipes as written
    python benchmarks/lr_find_table.py --limit 300 --epochs 1 --steps 50   # a quick look
    python benchmarks/lr_find_table.py --only nlp --set train.precision=fp32   # a CPU without native bf16

``--limit N`` cuts each recipe's data with its own key (fashion_mnist:
``data.limit_per_class``, N images per class in each split; sentiment:
``data.limit``, N training snippets, the same val and test splits);
``--set KEY=VALUE`` overrides every recipe (the test and both runs). All of it
runs in this process, one step after another; times compare only within one
invocation on an otherwise idle machine. The table and every setting are
saved as JSON.

Figures (docs/benchmarks.md, "ft lr-find"), 2026-12-02 on the 2-core
machine with other jobs beside them: ``--only vision --limit 500 --epochs 1``
and ``--only nlp --limit 2000 --epochs 1 --set train.precision=fp32``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import ft
import ft.lr_find
from ft.recipe import parse_override

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

#: row -> (recipe file, the key that cuts its data)
ROWS = {
    "vision": (RECIPES / "fashion_mnist.toml", "data.limit_per_class"),
    "nlp": (RECIPES / "sentiment_rotten_tomatoes.toml", "data.limit"),
}


def run_row(name: str, recipe: Path, overrides: dict, steps: int, work: Path) -> dict:
    """The range test, then the recipe at the suggested rate and at its own."""
    t0 = time.perf_counter()
    found = ft.lr_find.lr_find(recipe, overrides, steps=steps, out=work / f"{name}-lr-find", quiet=True)
    row = {"row": name, "recipe": recipe.name, "recipe_lr": found.recipe_lr, "suggested_lr": found.suggested_lr,
           "steep_lr": found.suggestions.steep, "minimum_lr_div_10": found.suggestions.minimum,
           "lr_find_steps": len(found.curve.lrs), "lr_find_stopped": found.curve.stopped,
           "lr_find_wall_s": round(time.perf_counter() - t0, 1), "overrides": overrides}
    print(f"{name}: suggested optim.lr {found.suggested_lr:.1e} (recipe {found.recipe_lr:g}) "
          f"in {row['lr_find_wall_s']:.0f} s", flush=True)
    # the suggestion as ft lr-find prints it (two significant digits) is what a user would run
    for which, lr in (("suggested", float(f"{found.suggested_lr:.1e}")), ("recipe", found.recipe_lr)):
        t0 = time.perf_counter()
        result = ft.run(recipe, {**overrides, "optim.lr": lr, "output.dir": str(work / f"{name}-{which}")},
                        quiet=True)
        row[f"{which}_test_accuracy"] = result.metrics.get("test", {}).get("accuracy")
        row[f"{which}_wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"{name}: at {which} lr {lr:g}: test accuracy {row[f'{which}_test_accuracy']:.4f} "
              f"in {row[f'{which}_wall_s']:.0f} s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description="lr-find's suggestion against each recipe's own learning rate")
    parser.add_argument("--only", nargs="*", choices=list(ROWS), help="run only these recipes")
    parser.add_argument("--steps", type=int, default=100, help="steps of the range test (default 100)")
    parser.add_argument("--limit", type=int, default=None, help="cut each recipe's data (see above)")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs of both runs (default: the recipe's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of every recipe (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: a temp folder)")
    args = parser.parse_args()

    common = dict(parse_override(text) for text in args.overrides)
    if args.epochs:
        common["train.epochs"] = args.epochs
    work = Path(tempfile.mkdtemp(prefix="lr_find_table_"))
    rows = []
    for name, (recipe, limit_key) in ROWS.items():
        if args.only and name not in args.only:
            continue
        overrides = {**({limit_key: args.limit} if args.limit else {}), **common}
        rows.append(run_row(name, recipe, overrides, args.steps, work))

    print("\n| recipe | recipe lr | suggested lr | test acc at recipe lr | test acc at suggested lr | "
          "wall: lr-find / recipe lr / suggested lr |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['recipe']} | {r['recipe_lr']:g} | {r['suggested_lr']:.1e} | "
              f"{100 * r['recipe_test_accuracy']:.2f} % | {100 * r['suggested_test_accuracy']:.2f} % | "
              f"{r['lr_find_wall_s']:.0f} s / {r['recipe_wall_s']:.0f} s / {r['suggested_wall_s']:.0f} s |")
    path = args.out or work / "lr_find_table.json"
    path.write_text(json.dumps({"steps": args.steps, "limit": args.limit, "epochs": args.epochs,
                                "overrides": args.overrides, "rows": rows}, indent=2))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
