"""MovieLens-100k cold start: the freeze library on the recommender, at one budget.

    python benchmarks/recommender_strategies.py --threads 1 [--pretrained RUN_DIR]

Every row fine-tunes the pretrained run of recipes/movielens_pretrain.toml
(pretrained here first unless ``--pretrained``) with
recipes/movielens_coldstart.toml, changing only ``[freeze]``: the same
data, epochs and learning rate, best epoch by validation NDCG@10 (48
users), test on the other 144 cold-start users. A strategy that cannot
apply to this backbone gets a row that says why. Layer groups of the
two-tower backbone, bottom to top: item table, user table, item tower, user
tower. The ranking head's own weights are a per-item score offset and a
temperature (1,684 for MovieLens), which is all ``linear_probe`` trains.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from recommender_coldstart import COLDSTART, PRETRAIN, QUIET  # this script's folder is on sys.path

STRATEGIES = {
    "freeze_bottom n=1 (the recipe)": {"strategy": "freeze_bottom", "n": 1},
    "full": {"strategy": "full"},
    "linear_probe": {"strategy": "linear_probe"},
    "gradual_unfreeze": {"strategy": "gradual_unfreeze", "every": 2},
    "lp_ft": {"strategy": "lp_ft", "probe_epochs": 5, "ft_lr_mult": 1.0, "head_ft_lr_mult": 1.0},
    "bitfit": {"strategy": "bitfit"},
    "lora": {"strategy": "lora", "r": 8, "alpha": 16},
    "l2sp": {"strategy": "l2sp"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pretrained", type=Path, default=None, help="a finished movielens_pretrain run directory")
    args = parser.parse_args()

    import torch

    import ft

    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="rec_strategies_"))
    pre = args.pretrained
    if pre is None:
        pre = work / "pretrain"
        ft.run(PRETRAIN, {**QUIET, "output.dir": str(pre)}, quiet=True)
    print("| strategy | trainable weights | val NDCG@10 | test NDCG@10 | test Recall@10 | wall time |")
    print("|---|---|---|---|---|---|")
    for i, (name, freeze) in enumerate(STRATEGIES.items()):
        t0 = time.perf_counter()
        try:
            result = ft.run(COLDSTART, {**QUIET, "backbone.init_from": str(pre), "freeze": freeze,
                                        "output.dir": str(work / f"run{i}")}, quiet=True)
        except ft.FtError as exc:
            print(f"| {name} | n/a: {str(exc).splitlines()[0]} | | | | |", flush=True)
            continue
        p, val, test = result.summary["params"], result.metrics["val"], result.metrics["test"]
        print(f"| {name} | {p['trainable']:,} ({100 * p['trainable'] / p['total']:.1f} %) | {val['ndcg@10']:.3f} | "
              f"{test['ndcg@10']:.3f} | {test['recall@10']:.3f} | {time.perf_counter() - t0:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
