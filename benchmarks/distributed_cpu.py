"""Two ranks vs one process on the CPU (gloo): sharded evaluation and a
cached linear probe's later epochs, side by side in one run.

    python benchmarks/distributed_cpu.py [--rounds 3] [--limit 0]

On the speech accent corpus (recipes/speech_accent_resemblyzer.toml, Resemblyzer):

* **Evaluation**: a linear probe's run directory is made once; then its
  test split (352 clips of 4 s when measured; 480 since the corpus has 4 test voices) is evaluated by 1 process and by 2 ranks
  (torchrun), alternating which goes first. Only the evaluation is timed
  (each process builds model and data first, then all ranks start
  together). Goal (scale-out issue): 2 ranks <= 0.6x the time of 1.
* **Cached linear probe, later epochs**: `ft run` with
  `freeze.strategy = "linear_probe"` (features computed once, sharded over
  the ranks) on 1 process and on 2 ranks; the training throughput of epochs
  2+ (examples/s over all ranks, from metrics.jsonl). Goal: the time per
  example on 2 ranks <= 1.2x one process's.

Every process uses one thread (a rank per core, as a rank per GPU), so 2
ranks use both cores of a 2-core machine; the one-process figure with two
threads is printed beside it for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "speech_accent_resemblyzer.toml"
PROBE = ["freeze.strategy=\"linear_probe\"", "data.augment=false", "data.random_crop=false",
         "backbone.spec_augment=false", "train.epochs=10", "train.precision=\"fp32\"", "optim.lr=3e-3",
         "optim.head_lr_mult=1.0"]


def env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}


def launch(ranks: int, args: list[str], threads: int = 1) -> subprocess.CompletedProcess:
    if ranks > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
                   *args]
    else:
        command = [sys.executable, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env(threads), timeout=3600)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    return done


def eval_worker(run_dir: str) -> None:
    """Build model and data, wait for every rank, time the test evaluation."""
    import torch

    import ft
    import ft.distributed
    from ft.engine import build_data

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    loaded = ft.load_run(run_dir)
    bundle = build_data(loaded.recipe, loaded.model.backbone)
    trainer = ft.Trainer(loaded.model, bundle.train, None, train=loaded.recipe.train, optim=loaded.recipe.optim,
                         strategy=ft.FreezeStrategy(), collate=loaded.model.backbone.collate(), quiet=True)
    trainer.setup()
    trainer.dist.barrier()
    t0 = time.perf_counter()
    metrics = trainer.evaluate(bundle.test, "test")
    seconds = time.perf_counter() - t0
    seconds = max(trainer.dist.all_gather_object(seconds))  # the run waits for its slowest rank
    if trainer.dist.is_main:
        print(json.dumps({"seconds": seconds, "metrics": metrics}))
    ft.distributed.shutdown()


def probe_epochs(ranks: int, out: Path, threads: int = 1) -> dict:
    """A cached linear probe: examples/s of the epochs after the first."""
    run_dir = out / f"probe-{ranks}x{threads}-{time.time_ns()}"
    launch(ranks, ["-m", "ft.cli", "run", str(RECIPE), "--quiet", *(f"--set={s}" for s in PROBE),
                   f"--set=output.dir=\"{run_dir}\""], threads)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    later = [line["examples_per_s"] for line in lines[1:]]
    return {"examples_per_s": statistics.median(later), "test": json.loads((run_dir / "summary.json").read_text())
            ["metrics"]["test"]["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        eval_worker(args.worker[1])
        return
    out = Path(tempfile.mkdtemp(prefix="ft-dist-bench-"))
    print("making a linear-probe run to evaluate ...", flush=True)
    run_dir = out / "source"
    launch(1, ["-m", "ft.cli", "run", str(RECIPE), "--quiet", *(f"--set={s}" for s in PROBE),
               "--set=train.epochs=1", f"--set=output.dir=\"{run_dir}\""], threads=2)

    evals: dict[str, list[float]] = {"1 process": [], "2 ranks": [], "1 process, 2 threads": []}
    probes: dict[str, list[dict]] = {"1 process": [], "2 ranks": [], "1 process, 2 threads": []}
    worker = [str(Path(__file__).resolve()), "--worker", "eval", str(run_dir)]
    metrics = {}
    for r in range(args.rounds):
        order = [("1 process", 1, 1), ("2 ranks", 2, 1)]
        if r % 2:
            order.reverse()
        for name, ranks, threads in [*order, ("1 process, 2 threads", 1, 2)]:
            result = json.loads(launch(ranks, worker, threads).stdout.strip().splitlines()[-1])
            evals[name].append(result["seconds"])
            metrics[name] = result["metrics"]
            probes[name].append(probe_epochs(ranks, out, threads))
            print(f"round {r + 1} {name:<22} eval {result['seconds']:.2f} s   probe epochs 2+ "
                  f"{probes[name][-1]['examples_per_s']:.0f} examples/s", flush=True)

    assert metrics["1 process"] == metrics["2 ranks"], "sharded evaluation changed the metrics"
    one, two = statistics.median(evals["1 process"]), statistics.median(evals["2 ranks"])
    print(f"\nevaluation of the test split (median of {args.rounds}): 1 process {one:.2f} s, 2 ranks {two:.2f} s, "
          f"ratio {two / one:.3f} (goal <= 0.6); 1 process with 2 threads "
          f"{statistics.median(evals['1 process, 2 threads']):.2f} s; metrics identical: True")
    rate = {k: statistics.median(p["examples_per_s"] for p in v) for k, v in probes.items()}
    ratio = rate["1 process"] / rate["2 ranks"]
    print(f"cached linear probe, epochs 2+: 1 process {rate['1 process']:.0f} examples/s, 2 ranks "
          f"{rate['2 ranks']:.0f} examples/s: time per example ratio {ratio:.3f} (goal <= 1.2); "
          f"1 process with 2 threads {rate['1 process, 2 threads']:.0f} examples/s; test accuracy "
          + ", ".join(f"{k} {statistics.median(p['test'] for p in v):.4f}" for k, v in probes.items()))


if __name__ == "__main__":
    main()
