"""A BERT encoder fine-tuned on 2 ranks equals one process with the whole
batch, with dynamic padding and length bucketing on: the bucketing groups
the epoch into global batches, which the ranks then share."""

from __future__ import annotations

from ddp_testkit import assert_same_training, run_jobs
from nlp_testkit import sentiment_rows, text_recipe, write_csv


def test_two_ranks_equal_one_process_with_bucketing(tiny_bert, tmp_path):
    reviews = write_csv(tmp_path / "reviews.csv", ["review", "sentiment"], sentiment_rows(320, seed=1))
    data = {"path": str(reviews), "text_column": "review", "label_column": "sentiment", "test_size": 64,
            "val_fraction": 0.1, "seed": 0, "bucket": True}
    backbone = {"name": "hf_encoder", "weights": str(tiny_bert), "pooling": "mean", "max_length": 32}
    for ranks in (2, 1):
        recipe = text_recipe(data, backbone, tmp_path / f"run{ranks}", train={"epochs": 2, "batch_size": 16 // ranks},
                             optim={"lr": 1e-3, "schedule": "cosine"})
        run_jobs([{"name": "nlp", "recipe": recipe}], tmp_path / f"out{ranks}", nproc=ranks)
    assert_same_training(tmp_path / "out2", tmp_path / "out1", "nlp")
