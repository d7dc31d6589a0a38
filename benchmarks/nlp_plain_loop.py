"""The issue's plain fine-tuning loop, on the recipe's own split: what the
85 % target means on this test set.

    python benchmarks/nlp_plain_loop.py --epochs 2

Issue 6 measured, on its own split, a plain loop (AdamW 5e-5, batch 32,
max_length 128, no schedule) at 84.5 % after one epoch and 83.6 % after two.
This script runs that loop without ftkit's trainer: transformers'
``AutoModelForSequenceClassification`` (the [CLS] pooler, dropout 0.1 and a
linear classifier) on all-MiniLM-L6-v2, AdamW at a constant 5e-5 (weight
decay 0.01, torch's default), shuffled batches of 32, no warmup, clipping or
early stopping. Only the split and the tokenised snippets come from ftkit
(``recipes/sentiment_rotten_tomatoes.toml``: the fixed 1,000-snippet test
split, 500 validation, the rest training). Each batch is padded to its
longest snippet rather than to 128; padding is masked, so the model computes
the same thing. It prints validation and test accuracy after every epoch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "sentiment_rotten_tomatoes.toml"


def accuracy(model, dataset, collate, batch_size: int = 128) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    model.eval()
    right = 0
    with torch.no_grad():
        for inputs, targets in loader:
            right += (model(**inputs).logits.argmax(-1) == targets).sum().item()
    model.train()
    return right / len(dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModelForSequenceClassification

    import ft
    from ft.engine import build_backbone, build_data
    from ft.plugins.nlp.backbones import resolve_weights
    from ft.plugins.nlp.batching import PadCollate

    recipe = ft.load_recipe(RECIPE)
    backbone = build_backbone(recipe)
    bundle = build_data(recipe, backbone)
    collate = PadCollate(backbone.tokenizer.pad_token_id)
    torch.manual_seed(args.seed)
    source, local = resolve_weights(recipe.backbone.options.weights)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2, local_files_only=local)
    del backbone
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(bundle.train, batch_size=args.batch_size, shuffle=True,
                                         generator=generator, collate_fn=collate)
    print(f"train {len(bundle.train)}, val {len(bundle.val)}, test {len(bundle.test)}; "
          f"AdamW {args.lr:g} constant, batch {args.batch_size}, threads {torch.get_num_threads()}", flush=True)
    t0 = time.perf_counter()
    model.train()
    for epoch in range(1, args.epochs + 1):
        for inputs, targets in loader:
            loss = model(**inputs, labels=targets).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        print(f"epoch {epoch}: val accuracy {accuracy(model, bundle.val, collate):.4f}  "
              f"test accuracy {accuracy(model, bundle.test, collate):.4f}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
