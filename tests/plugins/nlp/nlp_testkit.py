"""Helpers for the NLP tests: a tiny random BERT with its own WordPiece
tokenizer, a synthetic sentiment task, and table writers.

Nothing here touches a hub: the tiny model is built from a BertConfig and
saved to a temporary folder with a tokenizer made from a small vocabulary.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import random
from pathlib import Path

POSITIVE = ["good", "great", "superb", "moving", "funny", "brilliant", "charming", "delightful"]
NEGATIVE = ["bad", "awful", "dull", "boring", "clumsy", "tedious", "bland", "messy"]
NEUTRAL = ["the", "a", "film", "movie", "plot", "story", "actors", "director", "scene", "is", "was", "and",
           "with", "this", "its", "very", "quite", "script", "ending", "cast", "music", "on", "of", "it"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + POSITIVE + NEGATIVE + NEUTRAL


def make_tiny_bert(folder: Path, *, hidden: int = 64, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """Save a random BERT (``hidden`` wide, ``layers`` deep, pooler included)
    and a WordPiece tokenizer over :data:`VOCAB` to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder.mkdir(parents=True, exist_ok=True)
    BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True).save_pretrained(folder)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(folder)
    return folder


def tiny_encoder(folder, **options):
    """An ``hf_encoder`` backbone on a model folder (options as in a recipe)."""
    from ft.contracts import BuildContext
    from ft.plugins.nlp.backbones import HfEncoderOptions, build_hf_encoder

    return build_hf_encoder(HfEncoderOptions(weights=str(folder), **options), BuildContext())


def sentiment_rows(n: int, seed: int = 0, min_words: int = 3, max_words: int = 14) -> list[tuple[str, str]]:
    """``(text, "pos" | "neg")``: filler words plus one or two sentiment words
    of the label's polarity; lengths vary from ``min_words`` to ``max_words``."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.choices(NEUTRAL, k=rng.randint(min_words, max_words))
        for _ in range(rng.randint(1, 2)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        rows.append((" ".join(words), label))
    return rows


def write_csv(path: Path, header: list[str], rows: list, delimiter: str = ",", compress: str | None = None) -> Path:
    """Write a CSV/TSV (optionally gzip / bz2 compressed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = {"gz": gzip.open, "bz2": bz2.open, None: open}[compress]
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def text_recipe(data: dict, backbone: dict, run_dir: Path, **sections) -> dict:
    """A small, fast recipe on a text table."""
    recipe = {
        "task": {"type": "classification"},
        "data": {"format": "text_csv", **data},
        "backbone": backbone,
        "head": {"type": "linear"},
        "freeze": {"strategy": "full"},
        "optim": {"lr": 3e-3, "schedule": "linear", "warmup_ratio": 0.1},
        "train": {"epochs": 4, "batch_size": 16, "progress": False, "checkpoint": False},
        "output": {"dir": str(run_dir)},
    }
    for name, values in sections.items():
        recipe.setdefault(name, {}).update(values)
    return recipe
