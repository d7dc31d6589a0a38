"""MovieLens-100k cold start: most-popular vs from scratch vs fine-tuned.

    python benchmarks/recommender_coldstart.py --threads 1

Pretrains recipes/movielens_pretrain.toml (into a temp folder, not runs/),
then on the cold-start split of recipes/movielens_coldstart.toml (192 users
absent before the 80% timestamp quantile, first 5 interactions known; 48
validation users, 144 test users) measures NDCG@10, Recall@10 and HitRate@10
over the full catalogue for:

* most popular: counts over the pretraining period + the known interactions;
* from scratch: the recipe's model with random init, trained on the 960
  known cold-start interactions;
* pretrained, no fine-tuning (zero-shot: new users start as the average user);
* fine-tuned with the item table frozen (``freeze_bottom`` n = 1);
* fine-tuned with nothing frozen (``full``).

Honest tuning: every trained row picks its learning rate on the validation
users (and its best epoch by val ndcg@10, the trainer's best-model rule);
test users are only scored. The selected settings are then re-run with more
training seeds (``--seeds``) and the test figures reported as mean and
spread, and each seed-0 run is compared with most-popular user by user (a
paired bootstrap interval of the difference). Results are printed as a
Markdown table and saved as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = ROOT / "recipes" / "movielens_pretrain.toml"
COLDSTART = ROOT / "recipes" / "movielens_coldstart.toml"
QUIET = {"train.progress": False, "train.checkpoint": False}


def popularity(recipe) -> tuple[dict[str, dict[str, float]], "torch.Tensor"]:
    """Most-popular metrics on the val and test users of the recipe's split, and its scores."""
    import numpy as np

    from ft.contracts import BuildContext
    from ft.plugins.recommender import data as rec_data
    from ft.plugins.recommender.baselines import popularity_metrics, popularity_scores

    fmt, options = recipe.data.name, recipe.data.options
    bundle = rec_data.build_bundle(fmt, options, None, BuildContext(task_type="ranking"))
    inter, sp = rec_data.load(fmt, options)
    index = {x: i + 1 for i, x in enumerate(bundle.info["vocab"]["item"])}
    items = np.array([index[x] for x in inter.items.tolist()])
    scores = popularity_scores(items, np.concatenate([sp.before, sp.train]), bundle.task.num_outputs)
    return {"val": popularity_metrics(bundle.val, scores), "test": popularity_metrics(bundle.test, scores)}, scores


def paired(run_dir: Path, pop_scores, boots: int = 5000) -> dict[str, list[float]]:
    """Test users' metric differences, run minus most popular: mean and a
    paired bootstrap 95% interval (resampling users), per metric."""
    import numpy as np
    import torch
    from torch.utils.data import default_collate

    import ft
    from ft.plugins.recommender.heads import ranking_metrics

    loaded = ft.load_run(run_dir)
    test = ft.engine.build_data(loaded.recipe, loaded.model.backbone).test
    inputs, targets = default_collate([test[i] for i in range(len(test))])
    with torch.no_grad():
        mine = ranking_metrics(loaded.model(inputs), targets[:, 0], targets[:, 1])
    pop = ranking_metrics(pop_scores.expand(len(targets), -1), targets[:, 0], targets[:, 1])
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(targets), (boots, len(targets)))
    out = {}
    for name in ("ndcg@10", "recall@10"):
        diff = (mine[name] - pop[name]).numpy()
        out[name] = [float(diff.mean()), *np.percentile(diff[draws].mean(1), [2.5, 97.5]).tolist()]
    return out


def zero_shot(recipe) -> dict[str, dict[str, float]]:
    """The pretrained model (rows carried by ID, new users = the average user), not trained."""
    from ft.engine import _KeepAsIs, assemble
    from ft.trainer import Trainer

    model, bundle, _ = assemble(recipe)
    trainer = Trainer(model, bundle.train, None, train=recipe.train, optim=recipe.optim, strategy=_KeepAsIs(),
                      quiet=True)
    return {split: {k.split("_", 1)[1]: v for k, v in trainer.evaluate(data, split).items()}
            for split, data in (("val", bundle.val), ("test", bundle.test))}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def train(overrides: dict, out: Path) -> dict:
    import ft

    result = ft.run(COLDSTART, {**QUIET, **overrides, "output.dir": str(out)}, quiet=True)
    return {"val": result.metrics["val"], "test": result.metrics["test"], "best_epoch": result.summary["best_epoch"],
            "train_seconds": result.summary["train_seconds"], "run_dir": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-3, 1e-3, 3e-4], help="fine-tuning grid")
    parser.add_argument("--scratch-lrs", type=float, nargs="+", default=[1e-2, 3e-3, 1e-3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of the chosen settings")
    parser.add_argument("--pretrained", type=Path, default=None, help="reuse a finished pretraining run directory")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temp folder)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from ft.recipe import load_recipe

    work = args.out or Path(tempfile.mkdtemp(prefix="rec_coldstart_"))
    work.mkdir(parents=True, exist_ok=True)
    load0, t0 = os.getloadavg()[0], time.time()
    report: dict = {"load_start": load0, "threads": args.threads}

    pre = args.pretrained
    if pre is None:
        import ft

        pre = work / "pretrain"
        result = ft.run(PRETRAIN, {**QUIET, "output.dir": str(pre)}, quiet=True)
        report["pretrain"] = {"test": result.metrics["test"], "train_seconds": result.summary["train_seconds"]}
        print(f"pretrained in {result.summary['train_seconds']:.0f} s: {result.metrics['test']}", flush=True)
    init = {"backbone.init_from": str(pre)}

    recipe = load_recipe(COLDSTART, {**QUIET, **init})
    pop_row, pop_scores = popularity(recipe)
    rows: dict[str, dict] = {"most popular": pop_row}
    rows["pretrained, no fine-tuning"] = zero_shot(recipe)
    print(f"pretrained, no fine-tuning: val ndcg@10 {rows['pretrained, no fine-tuning']['val']['ndcg@10']:.4f}",
          flush=True)
    grids = {
        "from scratch": [{"backbone.init_from": None, "freeze": {"strategy": "full"}, "optim.lr": lr}
                         for lr in args.scratch_lrs],
        "fine-tuned, item table frozen": [{**init, "optim.lr": lr} for lr in args.lrs],
        "fine-tuned, nothing frozen": [{**init, "freeze": {"strategy": "full"}, "optim.lr": lr} for lr in args.lrs],
    }
    report["grid"] = {}
    for name, settings in grids.items():
        tried = []
        for i, overrides in enumerate(settings):
            outcome = train(overrides, work / f"{slug(name)}_{i}")
            tried.append({"overrides": overrides, **outcome})
            print(f"{name} lr {overrides['optim.lr']:g}: val ndcg@10 {outcome['val']['ndcg@10']:.4f} "
                  f"(epoch {outcome['best_epoch']})", flush=True)
        best = max(tried, key=lambda r: r["val"]["ndcg@10"])
        runs = [best] + [train({**best["overrides"], "train.seed": s}, work / f"{slug(name)}_seed{s}")
                         for s in args.seeds if s != 0]
        report["grid"][name] = tried
        rows[name] = {"val": best["val"], "test": {k: statistics.mean(r["test"][k] for r in runs) for k in best["test"]},
                      "test_runs": [r["test"] for r in runs], "lr": best["overrides"]["optim.lr"],
                      "vs_popular_seed0": paired(Path(best["run_dir"]), pop_scores)}

    report["rows"] = rows
    report["load_end"], report["seconds"] = os.getloadavg()[0], round(time.time() - t0)
    (work / "results.json").write_text(json.dumps(report, indent=2, default=str))
    pop, scratch = rows["most popular"]["test"], rows["from scratch"]["test"]
    print(f"\n| model | lr | val ndcg@10 | test ndcg@10 | test recall@10 | test hit@10 | vs popular | vs scratch |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        test = row["test"]
        spread = ""
        if len(row.get("test_runs", [])) > 1:
            spread = f" ({min(r['ndcg@10'] for r in row['test_runs']):.3f}-{max(r['ndcg@10'] for r in row['test_runs']):.3f})"
        print(f"| {name} | {row.get('lr', '-')} | {row['val']['ndcg@10']:.3f} | {test['ndcg@10']:.3f}{spread} | "
              f"{test['recall@10']:.3f} | {test['hit@10']:.3f} | {test['ndcg@10'] - pop['ndcg@10']:+.3f} | "
              f"{test['ndcg@10'] - scratch['ndcg@10']:+.3f} |")
    print("\nseed-0 run minus most popular on the same test users (mean [paired bootstrap 95% interval]):")
    for name, row in rows.items():
        if "vs_popular_seed0" in row:
            print(f"  {name}: " + "; ".join(f"{m} {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"
                                            for m, v in row["vs_popular_seed0"].items()))
    print(f"\n{report['seconds']} s; load average {load0:.1f} at start, {report['load_end']:.1f} at end; "
          f"results in {work / 'results.json'}")


if __name__ == "__main__":
    main()
