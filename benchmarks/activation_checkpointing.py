"""What ``train.activation_checkpointing`` buys: memory for a training step
with and without it, and what the step then costs, per backbone.

    python benchmarks/activation_checkpointing.py [--steps 3]

Each (backbone, setting) runs in a fresh subprocess: the backbone from the
same pip-packaged weights the recipes use, a linear head, AdamW, a few
training steps on random inputs of the recipes' shapes. Memory: the peak
resident set during the steps less the resident set before them (the
kernel's high-water mark reset first), i.e. activations, gradients and
optimizer state; on a GPU the same comparison is ``max_memory_allocated``.
Time: the median step. One thread (the figure least disturbed by other
work on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from ft.contracts import BuildContext
from ft.meters import _cpu_peak_mb, _reset_cpu_peak

#: backbone -> (builder, input maker); shapes as in the shipped recipes
CASES = {
    "efficientnet_lite0 (32 x 3x224x224)": "vision",
    "minilm (32 x 128 tokens)": "nlp",
    "sasrec (256 users x 50 items)": "rec",
}


def build(kind: str):
    ctx = BuildContext()
    if kind == "vision":
        from ft.plugins.vision.backbones import Lite0Options, build_lite0

        return build_lite0(Lite0Options(), ctx), torch.randn(32, 3, 224, 224)
    if kind == "nlp":
        from ft.plugins.nlp.backbones import MiniLMOptions, build_minilm

        backbone = build_minilm(MiniLMOptions(max_length=128), ctx)
        ids = torch.randint(1000, 20000, (32, 128))
        return backbone, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    from ft.contracts import TaskInfo
    from ft.plugins.recommender.models import SasRec, SasRecOptions

    backbone = SasRec(SasRecOptions(dim=64, layers=2, heads=2, max_history=50, dropout=0.0), ctx)
    n_items = 1683
    backbone.bind_data(TaskInfo("ranking", n_items), {"vocab": {"user": [str(i) for i in range(944)],
                                                                "item": [str(i) for i in range(n_items)]}})
    return backbone, {"history": torch.randint(1, n_items, (256, 50)), "user": torch.randint(1, 944, (256,))}


def child(kind: str, checkpointing: bool, steps: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    backbone, inputs = build(kind)
    if checkpointing:
        backbone.enable_activation_checkpointing()
    head = nn.Linear(backbone.feature_dim, 10)
    params = [*backbone.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4, foreach=True)
    backbone.train()
    target = torch.randint(0, 10, (len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs),))
    _reset_cpu_peak()
    base = _cpu_peak_mb()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(head(backbone(inputs)), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"peak_growth_mb": _cpu_peak_mb() - base, "step_s": statistics.median(times[1:] or times)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "on", args.steps)
        return
    print("| backbone (batch) | peak memory growth off / on | ratio | step time off / on | ratio |\n|---|---|---|---|---|")
    for name, kind in CASES.items():
        got = {}
        for setting in ("off", "on"):
            out = subprocess.run([sys.executable, __file__, "--child", kind, setting, "--steps", str(args.steps)],
                                 capture_output=True, text=True, check=True, env={"OMP_NUM_THREADS": "1",
                                                                                  "HF_HUB_OFFLINE": "1",
                                                                                  "PATH": ""})
            got[setting] = json.loads(out.stdout.strip().splitlines()[-1])
        off, on = got["off"], got["on"]
        print(f"| {name} | {off['peak_growth_mb']:.0f} / {on['peak_growth_mb']:.0f} MB | "
              f"{on['peak_growth_mb'] / off['peak_growth_mb']:.2f} | {off['step_s']:.2f} / {on['step_s']:.2f} s | "
              f"{on['step_s'] / off['step_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
