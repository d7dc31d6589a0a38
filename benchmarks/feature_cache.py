"""Linear-probe epoch time with frozen-feature caching vs without.

    python benchmarks/feature_cache.py recipes/speech_accent_resemblyzer.toml --epochs 4 [--set key=value ...]

Runs the recipe twice as a linear probe (``freeze.strategy=linear_probe``):
``train.cache_features=auto`` and ``=false``, everything else equal, and
prints per-epoch times from each run's metrics.jsonl, the speed-up per epoch
after the first, and both test accuracies (which must agree). Target
(issue 3): at least 10x faster per epoch after the first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import ft
from ft.recipe import parse_override


def epoch_times(run_dir: Path) -> list[float]:
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    elapsed = [r["elapsed"] for r in lines]
    return [b - a for a, b in zip([0.0] + elapsed[:-1], elapsed)]


def main() -> None:
    parser = argparse.ArgumentParser(description="frozen-feature cache speed-up on a linear probe")
    parser.add_argument("recipe")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="ft-cache-bench-"))
    results = {}
    for name, cache in (("cached", "auto"), ("uncached", False)):
        overrides = dict(parse_override(o) for o in args.overrides)
        overrides.update({"freeze.strategy": "linear_probe", "train.cache_features": cache,
                          "train.epochs": args.epochs, "train.patience": None, "output.dir": str(out / name)})
        overrides = {k: v for k, v in overrides.items() if v is not None}
        result = ft.run(args.recipe, overrides, quiet=True)
        times = epoch_times(result.run_dir)
        results[name] = (times, result.metrics.get("test", {}).get("accuracy"), result.summary["settings"]["feature_cache"])
        print(f"{name:9s} epochs (s): {', '.join(f'{t:.2f}' for t in times)}; test accuracy {results[name][1]:.4f}; "
              f"cache {results[name][2]}", flush=True)
    cached, plain = results["cached"][0], results["uncached"][0]
    later_cached, later_plain = statistics.median(cached[1:]), statistics.median(plain[1:])
    print(f"first epoch: cached {cached[0]:.2f} s (includes computing features), uncached {plain[0]:.2f} s")
    print(f"epochs after the first (median): cached {later_cached:.3f} s, uncached {later_plain:.3f} s; "
          f"speed-up {later_plain / later_cached:.1f}x")
    print(f"test accuracy: cached {results['cached'][1]:.4f}, uncached {results['uncached'][1]:.4f}")


if __name__ == "__main__":
    main()
