"""MovieLens-100k cold start: most popular vs from scratch vs fine-tuned, cross-fitted.

    python benchmarks/recommender_coldstart.py --threads 1
    python benchmarks/recommender_coldstart.py --backbones two_tower --lrs 3e-3 1e-3 3e-4 1e-4
    # more fine-tuning rates without pretraining again: reuse an earlier --out's pre_<backbone> runs
    python benchmarks/recommender_coldstart.py --backbones sasrec --lrs 1e-4 3e-5 --pretrained OLD_OUT

The cold-start split of recipes/movielens_coldstart.toml: 192 users absent
before the 80% timestamp quantile, their first 5 interactions known (the
training data of every row), all their later interactions to be ranked over
the full catalogue minus the known 5.

What is compared (NDCG@10, Recall@10):

* most popular: counts over the pretraining period + the known interactions;
* from scratch: a model with random init trained on the 960 known interactions;
* pretrained, no fine-tuning (new users start as the average pretrained user);
* fine-tuned from the pretrained run, item table frozen (``freeze_bottom`` n=1);
* fine-tuned from the pretrained run, nothing frozen (``full``).

Each trained row is a *procedure*: pick the backbone (``mf``, ``two_tower``,
``sasrec``; each pretrained once on the first 80% by time with
recipes/movielens_pretrain.toml's settings), the learning rate and the
number of epochs by validation NDCG@10, then score. Every configuration is
trained once; a lifecycle hook (``ft_epoch_end``, registered like any
plugin) scores all 192 users after every epoch, user by user.

Cross-fitting makes the estimate honest and uses every user: the 192 users
are cut into ``--folds`` seeded folds; for each fold the configuration and
epoch are chosen on the other folds' users and only that fold's users are
scored with it. Every user is thus scored by a model selected without them;
the pooled 192-user means are reported, with paired bootstrap 95%
intervals (resampling users) of the differences to most popular and to
from scratch. Separately, the configuration the recipe should use is the one
chosen on the recipe's own 48 validation users (its 144 test users unseen).
Results are printed as Markdown and saved as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import ft

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = ROOT / "recipes" / "movielens_pretrain.toml"
COLDSTART = ROOT / "recipes" / "movielens_coldstart.toml"
QUIET = {"train.progress": False, "train.checkpoint": False}
#: the backbones compared, each with the same width; pretrained with movielens_pretrain.toml's loop
BACKBONES = {
    "mf": {"name": "mf", "dim": 64},
    "two_tower": {"name": "two_tower", "dim": 64, "hidden": 128, "history": 50, "user_id": True},
    # 20 latest items: attention over 50 made pretraining ~10x slower on one CPU thread
    "sasrec": {"name": "sasrec", "dim": 64, "max_history": 20, "layers": 2, "heads": 2, "dropout": 0.2},
}
FREEZE = {"item table frozen": {"strategy": "freeze_bottom", "n": 1}, "nothing frozen": {"strategy": "full"}}
METRICS = ("ndcg@10", "recall@10")


def cold_users(bundle):
    """Every cold-start user of the split (val and test) as one batch, in user-index order
    (the same order for every run): ``(inputs, targets)``."""
    import torch
    from torch.utils.data import default_collate

    inputs, targets = default_collate([ds[i] for ds in (bundle.val, bundle.test) for i in range(len(ds))])
    order = torch.argsort(inputs["user"])
    return {k: v[order] for k, v in inputs.items()}, targets[order]


def per_user_metrics(scores, targets) -> np.ndarray:
    """``[n_users, len(METRICS)]`` over the full catalogue minus each user's known items."""
    from ft.plugins.recommender.heads import ranking_metrics

    per_user = ranking_metrics(scores, targets[:, 0], targets[:, 1])
    return np.stack([per_user[m].numpy() for m in METRICS], axis=1)


class PerUserScores:
    """A lifecycle-hook plugin: after every epoch (and once before the first)
    it ranks the full catalogue for every cold-start user (val and test
    users of the recipe's split) and keeps each user's NDCG@10 and
    Recall@10. The model's train/eval modes are restored afterwards, so
    training is unchanged."""

    def __init__(self):
        self.current: list[np.ndarray] | None = None
        self._data: dict[str, tuple] = {}

    def _users(self, run):
        from ft.engine import build_data

        key = run.recipe.backbone.name  # histories are shaped for the backbone
        if key not in self._data:
            self._data[key] = cold_users(build_data(run.recipe, run.model.backbone))
        return self._data[key]

    def _score(self, run) -> None:
        import torch

        inputs, targets = self._users(run)
        model = run.model
        modes = {m: m.training for m in model.modules()}
        model.eval()
        try:
            with torch.no_grad():
                scores = model({k: v.to(run.device) for k, v in inputs.items()}).cpu()
        finally:
            for m, mode in modes.items():
                m.training = mode
        self.current.append(per_user_metrics(scores, targets))

    def user_ids(self) -> np.ndarray:
        return next(iter(self._data.values()))[0]["user"].numpy()

    @ft.hookimpl
    def ft_run_start(self, run) -> None:
        self.current = []
        self._score(run)

    @ft.hookimpl
    def ft_epoch_end(self, run, epoch, metrics) -> None:
        self._score(run)


def popularity(recipe, user_ids: np.ndarray) -> tuple[np.ndarray, set[int]]:
    """Most popular, per user ``[n_users, len(METRICS)]`` in ``user_ids`` order,
    and the recipe split's validation users."""
    from ft.contracts import BuildContext
    from ft.plugins.recommender import data as rec_data
    from ft.plugins.recommender.baselines import popularity_scores

    fmt, options = recipe.data.name, recipe.data.options
    bundle = rec_data.build_bundle(fmt, options, None, BuildContext(task_type="ranking"))
    inter, sp = rec_data.load(fmt, options)
    index = {x: i + 1 for i, x in enumerate(bundle.info["vocab"]["item"])}
    items = np.array([index[x] for x in inter.items.tolist()])
    scores = popularity_scores(items, np.concatenate([sp.before, sp.train]), bundle.task.num_outputs)
    inputs, targets = cold_users(bundle)
    assert np.array_equal(inputs["user"].numpy(), user_ids), "user order differs from the runs'"
    return per_user_metrics(scores.expand(len(targets), -1), targets), set(bundle.val.user.tolist())


def choose(candidates: dict[str, np.ndarray], users: np.ndarray) -> tuple[str, int]:
    """The (configuration, row of its curve) with the best mean NDCG@10 over ``users``."""
    return max(((name, e) for name, curve in candidates.items() for e in range(curve.shape[0])),
               key=lambda ne: np.nanmean(candidates[ne[0]][ne[1], users, 0]))


def cross_fit(candidates: dict[str, np.ndarray], first_epoch: int, folds: list[np.ndarray], n_users: int):
    """Per-user scores where each fold's users are scored by the choice made on
    the other folds. Row ``e`` of a curve is the model after ``first_epoch + e`` epochs."""
    out = np.full((n_users, len(METRICS)), np.nan)
    chosen = []
    for fold in folds:
        rest = np.setdiff1d(np.arange(n_users), fold)
        name, e = choose(candidates, rest)
        out[fold] = candidates[name][e, fold]
        chosen.append(f"{name} @ epoch {first_epoch + e}")
    return out, chosen


def paired(a: np.ndarray, b: np.ndarray, boots: int = 5000, seed: int = 0) -> list[float]:
    """Mean of ``a - b`` over users and its paired bootstrap 95% interval."""
    diff = a - b
    draws = np.random.default_rng(seed).integers(0, len(diff), (boots, len(diff)))
    return [float(np.nanmean(diff)), *np.percentile(np.nanmean(diff[draws], axis=1), [2.5, 97.5]).tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-3, 1e-3, 3e-4], help="fine-tuning grid")
    parser.add_argument("--scratch-lrs", type=float, nargs="+", default=[1e-2, 3e-3, 1e-3])
    parser.add_argument("--epochs", type=int, default=30, help="epochs per configuration (each one a candidate)")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temp folder)")
    parser.add_argument("--pretrained", type=Path, default=None,
                        help="an earlier invocation's --out: reuse its pre_<backbone> runs instead of pretraining")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from ft.recipe import load_recipe

    work = args.out or Path(tempfile.mkdtemp(prefix="rec_coldstart_"))
    work.mkdir(parents=True, exist_ok=True)
    load0, t0 = os.getloadavg()[0], time.time()
    report: dict = {"load_start": load0, "threads": args.threads, "epochs": args.epochs, "folds": args.folds}

    def run(recipe: Path, overrides: dict, out: Path):
        return ft.run(recipe, {**QUIET, "train.epochs": args.epochs, **overrides, "output.dir": str(out)},
                      quiet=True)

    pretrained, report["pretrain"] = {}, {}
    for name in args.backbones:
        pretrained[name] = args.pretrained / f"pre_{name}" if args.pretrained else work / f"pre_{name}"
        if args.pretrained:  # pretrained by an earlier invocation: read its figures back
            summary = json.loads((pretrained[name] / "summary.json").read_text())
            test, seconds = summary["metrics"]["test"], summary["train_seconds"]
        else:
            result = ft.run(PRETRAIN, {**QUIET, "backbone": BACKBONES[name], "output.dir": str(pretrained[name])},
                            quiet=True)
            test, seconds = result.metrics["test"], result.summary["train_seconds"]
        report["pretrain"][name] = {"test": test, "train_seconds": seconds, "dir": str(pretrained[name])}
        print(f"pretrained {name} in {seconds:.0f} s: test ndcg@10 {test['ndcg@10']:.4f}", flush=True)

    scorer = PerUserScores()
    ft.get_registry().register(scorer, name="bench-per-user-scores")
    curves: dict[str, dict[str, np.ndarray]] = {"from scratch": {}, **{f"fine-tuned, {f}": {} for f in FREEZE}}
    plans = [("from scratch", f"{b} lr {lr:g}", {"backbone": BACKBONES[b], "freeze": {"strategy": "full"},
                                                 "optim.lr": lr})
             for b, lr in itertools.product(args.backbones, args.scratch_lrs)]
    plans += [(f"fine-tuned, {f}", f"{b} lr {lr:g}", {"backbone": {**BACKBONES[b], "init_from": str(pretrained[b])},
                                                      "freeze": FREEZE[f], "optim.lr": lr})
              for f, b, lr in itertools.product(FREEZE, args.backbones, args.lrs)]
    for i, (row, config, overrides) in enumerate(plans):
        t1 = time.time()
        run(COLDSTART, overrides, work / f"run{i}")
        curves[row][config] = np.stack(scorer.current)  # [epochs + 1, users, metrics]
        best = np.nanmean(curves[row][config][:, :, 0], axis=1)
        print(f"{row}, {config}: all-user ndcg@10 before {best[0]:.4f}, best {best.max():.4f} at epoch "
              f"{best.argmax()} ({time.time() - t1:.0f} s)", flush=True)
    # "pretrained, no fine-tuning" = epoch 0 of the fine-tuning runs; trained rows need >= 1 epoch.
    # Each row: (candidate curves, the epoch their first row is)
    zero = {c.rsplit(" lr ", 1)[0]: v[:1] for c, v in curves["fine-tuned, nothing frozen"].items()}
    rows_in = {"pretrained, no fine-tuning": (zero, 0),
               **{row: ({c: v[1:] for c, v in cands.items()}, 1) for row, cands in curves.items()}}

    user_ids = scorer.user_ids()
    n = len(user_ids)
    recipe = load_recipe(COLDSTART, QUIET)
    pop, val_users = popularity(recipe, user_ids)
    perm = np.random.default_rng(0).permutation(n)
    folds = [np.sort(f) for f in np.array_split(perm, args.folds)]
    rows = {"most popular": {"per_user": pop, "chosen": []}}
    for row, (candidates, first) in rows_in.items():
        per_user, chosen = cross_fit(candidates, first, folds, n)
        rows[row] = {"per_user": per_user, "chosen": chosen}
    # the recipe's choice: on its own 48 validation users only
    val_idx = np.flatnonzero(np.isin(user_ids, list(val_users)))
    recipe_choice = {}
    for row, (candidates, first) in rows_in.items():
        name, e = choose(candidates, val_idx)
        recipe_choice[row] = f"{name} @ epoch {first + e}"

    scratch = rows["from scratch"]["per_user"]
    print(f"\n{n} cold-start users, {args.folds}-fold cross-fitting (each user scored by the configuration "
          f"and epoch chosen on the other folds' users):\n")
    print("| model | NDCG@10 | Recall@10 | NDCG@10 vs most popular [95% CI] | vs from scratch [95% CI] |")
    print("|---|---|---|---|---|")
    table = {}
    for name, row in rows.items():
        m = np.nanmean(row["per_user"], axis=0)
        vs_pop, vs_scratch = paired(row["per_user"][:, 0], pop[:, 0]), paired(row["per_user"][:, 0], scratch[:, 0])
        table[name] = {"ndcg@10": m[0], "recall@10": m[1], "vs_popular": vs_pop, "vs_scratch": vs_scratch,
                       "chosen_per_fold": row["chosen"], "recall_vs_popular": paired(row["per_user"][:, 1], pop[:, 1])}
        fmt = lambda d: f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"  # noqa: E731
        print(f"| {name} | {m[0]:.3f} | {m[1]:.3f} | {fmt(vs_pop)} | {fmt(vs_scratch)} |")
    print("\nchosen per fold:")
    for name, row in table.items():
        if row["chosen_per_fold"]:
            print(f"  {name}: " + "; ".join(row["chosen_per_fold"]))
    print("\nchosen on the recipe's 48 validation users:")
    for name, choice in recipe_choice.items():
        print(f"  {name}: {choice}")
    report.update(table=table, recipe_choice=recipe_choice, seconds=round(time.time() - t0),
                  load_end=os.getloadavg()[0])
    (work / "results.json").write_text(json.dumps(report, indent=2, default=float))
    print(f"\n{report['seconds']} s; load average {load0:.1f} at start, {report['load_end']:.1f} at end; "
          f"results in {work / 'results.json'}")


if __name__ == "__main__":
    main()
