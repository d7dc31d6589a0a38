"""`ft --help` wall time, and whether it imported torch.

    python benchmarks/cli_startup.py [--runs 20]

Target (issue 2): under 0.3 s, no torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    ft = Path(sys.executable).with_name("ft")
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run([str(ft), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    probe = ("import sys; from ft.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'timm', 'transformers', 'torchaudio', 'pydantic') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print(f"ft --help: median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
          f"over {args.runs} runs")
    print(f"heavy modules imported by --help: {imported}")


if __name__ == "__main__":
    main()
