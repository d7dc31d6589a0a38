"""SASRec on 2 ranks equals one process with the whole batch, and the
full-catalogue ranking metrics of a finished run are the same numbers
whether 1 or 2 ranks evaluate it (each rank ranks the catalogue for half
the users; the per-user sums are merged exactly)."""

from __future__ import annotations

from ddp_testkit import assert_same_training, outcome, run_jobs
from rec_testkit import rec_recipe, synthetic, write_atomic

SASREC = {"name": "sasrec", "max_history": 8, "layers": 1, "heads": 2, "dropout": 0.0}


def test_two_ranks_equal_one_process_and_evaluate_exactly(tmp_path):
    inter = write_atomic(tmp_path / "toy", synthetic(n_users=36, n_items=30, per_user=10))
    for ranks in (2, 1):
        # SGD: attention key biases have a gradient that is zero up to rounding (softmax ignores a shift
        # shared by all keys), which Adam would scale up to full-size, run-specific steps. fp64: in float32
        # two ranks' half-batch sums round differently from one whole batch's, by how much depends on the
        # CPU's kernels (3e-5 in the position table on a CPU without AVX2), more than the test should allow
        recipe = rec_recipe(tmp_path, inter, SASREC, train={"epochs": 2, "batch_size": 32 // ranks,
                                                            "checkpoint": True, "eval_batch_size": 5,
                                                            "precision": "fp64"},
                            optim={"name": "sgd", "lr": 0.5}, output={"dir": str(tmp_path / f"run{ranks}")})
        run_jobs([{"name": "rec", "recipe": recipe}], tmp_path / f"out{ranks}", nproc=ranks)
    assert_same_training(tmp_path / "out2", tmp_path / "out1", "rec")

    jobs = [{"name": f"eval-{split}", "action": "eval", "run_dir": str(tmp_path / "run1"), "split": split}
            for split in ("val", "test")]
    run_jobs(jobs, tmp_path / "eval2", nproc=2)
    run_jobs(jobs, tmp_path / "eval1", nproc=1)
    for job in jobs:
        one = outcome(tmp_path / "eval1", job["name"])["metrics"]
        assert set(one) == {"loss", "ndcg@10", "recall@10", "hit@10"}
        assert outcome(tmp_path / "eval2", job["name"], 0)["metrics"] == one
        assert outcome(tmp_path / "eval2", job["name"], 1)["metrics"] == one
