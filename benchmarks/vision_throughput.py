"""Vision training throughput: ft's trainer vs a plain PyTorch loop.

    python benchmarks/vision_throughput.py [--rounds 5] [--batches 20] [--channels-last] [--bf16]
                                           [--compile] [--device cpu|cuda] [--threads 2]

Both loops train the same model (the vision plugin's backbone + a linear
head, built from the same seed), on the same images through the same
transforms (the plugin's Fashion-MNIST path: uint8 arrays -> RGB PIL ->
timm resize + flip -> tensor), with the same batch size and AdamW settings,
one epoch of ``--batches`` batches at a time, alternating which goes first,
in ONE process: only side-by-side ratios mean anything on a shared machine.
Fashion-MNIST is used when Debian's dataset-fashion-mnist is installed,
random 28x28 grey images otherwise (same cost per image). Target (issue 5):
ft/plain throughput ratio >= 0.97.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import ft
from ft.contracts import BuildContext, TaskInfo

FASHION_TRAIN = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def images(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    from ft.plugins.vision.idx import read_idx

    if FASHION_TRAIN.exists():
        labels = read_idx(FASHION_TRAIN.with_name("train-labels-idx1-ubyte.gz"))[:n]
        return read_idx(FASHION_TRAIN)[:n], labels.astype(np.int64), "Fashion-MNIST"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n), "random 28x28 grey images"


def build_model(args) -> ft.FtModel:
    from ft.plugins.heads import HeadOptions, build_linear

    registry = ft.get_registry()
    spec = registry.get("ft_backbones", args.backbone)
    options = {"image_size": args.image_size, "crop_pct": 1.0}
    if args.backbone == "timm":
        options.update(model=args.model, weights=args.weights)
    backbone = spec.build(spec.options.model_validate(options), BuildContext())
    task = TaskInfo("classification", 10, tuple(str(i) for i in range(10)))
    torch.manual_seed(0)
    return ft.FtModel(backbone, build_linear(HeadOptions(), backbone.feature_dim, task, None), task)


def plain_epoch(model, loader, opt, device, channels_last: bool, dtype) -> None:
    model.train()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
            loss = nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="vision training throughput: ft trainer vs plain loop")
    parser.add_argument("--backbone", default="efficientnet_lite0", choices=["efficientnet_lite0", "timm"])
    parser.add_argument("--model", default="resnet18", help="timm model (with --backbone timm)")
    parser.add_argument("--weights", default="random", help="timm weights (with --backbone timm)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20, help="batches per timed epoch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (both loops)")
    parser.add_argument("--compile", action="store_true", help="torch.compile (both loops)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    from ft.plugins.vision.data import ArraySource
    from ft.plugins.vision.transforms import AugmentOptions, image_transforms

    n = args.batches * args.batch
    pixels, labels, source = images(n)
    ft_model = build_model(args)
    plain_model = copy.deepcopy(ft_model)
    train_tf, _, _ = image_transforms(ft_model.backbone, AugmentOptions(random_resized_crop=False, hflip=0.5))
    data = ArraySource(pixels, np.arange(n), labels).dataset(train_tf)

    dtype = torch.bfloat16 if args.bf16 else None
    trainer = ft.Trainer(ft_model, data, None, train={
        "epochs": 1, "batch_size": args.batch, "progress": False, "checkpoint": False, "device": args.device,
        "precision": "bf16" if args.bf16 else "fp32", "channels_last": args.channels_last, "compile": args.compile,
    }, optim={"lr": 1e-3, "weight_decay": 0.01, "schedule": "constant"}, quiet=True)
    trainer.setup()
    plain_model.to(device)
    if args.channels_last:
        plain_model.to(memory_format=torch.channels_last)
    forward = torch.compile(plain_model) if args.compile else plain_model
    decay = [p for p in plain_model.parameters() if p.ndim > 1]
    no_decay = [p for p in plain_model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, fused=device.type == "cuda", foreach=None if device.type == "cuda" else True)
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, pin_memory=device.type == "cuda")

    def run(kind: str) -> None:
        if kind == "ft":
            trainer.fit()
        else:
            plain_epoch(forward, loader, opt, device, args.channels_last, dtype)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for kind in ("ft", "plain"):  # warm-up: kernels, allocator, compile
        run(kind)
    rate = {"ft": [], "plain": []}  # images per second of wall time
    cpu = {"ft": [], "plain": []}  # CPU seconds per image: less disturbed by other work on a shared machine
    for r in range(args.rounds):
        for kind in (("ft", "plain") if r % 2 == 0 else ("plain", "ft")):
            t0, c0 = time.perf_counter(), time.process_time()
            run(kind)
            rate[kind].append(n / (time.perf_counter() - t0))
            cpu[kind].append((time.process_time() - c0) / n)
        print(f"round {r + 1}: ft {rate['ft'][-1]:.1f} img/s ({1e3 * cpu['ft'][-1]:.1f} CPU ms/img), "
              f"plain {rate['plain'][-1]:.1f} img/s ({1e3 * cpu['plain'][-1]:.1f} CPU ms/img)", flush=True)
    ratios = [a / b for a, b in zip(rate["ft"], rate["plain"])]
    cpu_ratios = [b / a for a, b in zip(cpu["ft"], cpu["plain"])]
    print(f"{args.backbone} {args.image_size}px batch {args.batch}, {source}, device {device}, "
          f"{torch.get_num_threads()} thread(s), channels_last {args.channels_last}, bf16 {args.bf16}, "
          f"compile {args.compile}: ft median {statistics.median(rate['ft']):.1f} img/s, plain median "
          f"{statistics.median(rate['plain']):.1f} img/s; throughput ratio ft/plain median "
          f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}; target >= 0.97); "
          f"by CPU time {statistics.median(cpu_ratios):.3f}")


if __name__ == "__main__":
    main()
