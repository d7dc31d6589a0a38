"""The run directory: everything a finished (or interrupted) run leaves.

::

    recipe.toml      resolved recipe (defaults filled in)
    env.json         versions, device, command
    task.json        task inferred from the data (classes, id maps)
    metrics.jsonl    one JSON line per epoch (and per evaluation)
    checkpoints/     epoch-N/ directories and a `latest` pointer
    best/            model.safetensors + metrics.json of the best epoch
    summary.json     final metrics per split, timings, parameter counts
    curves.png       loss and metrics per epoch
    MODEL_CARD.md    what was trained, on what, how well
"""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .checkpoint import write_json_atomic


def new_run_dir(root: str | Path, recipe_name: str) -> Path:
    """``root/<recipe>-<YYYYmmdd-HHMMSS>`` (suffixed if taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{recipe_name}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def latest_run_dir(root: str | Path, recipe_name: str) -> Path | None:
    """The newest run directory of a recipe that has a checkpoint."""
    candidates = [p for p in Path(root).glob(f"{recipe_name}-*") if (p / "checkpoints" / "latest.json").exists()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def environment(device: str, precision: str, world_size: int = 1, backend: str | None = None) -> dict[str, Any]:
    import torch

    versions = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("ftkit", "timm", "transformers", "torchaudio", "peft", "pluggy", "safetensors"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            pass
    return {
        "versions": versions,
        "platform": platform.platform(),
        "device": device,
        "precision": precision,
        "world_size": world_size,
        "backend": backend,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
        "started": datetime.now().isoformat(timespec="seconds"),
    }


class MetricsLog:
    """Append-only JSON-lines log; each line is flushed as it is written."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, record: dict) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, epoch: int) -> None:
        """Drop records past ``epoch`` (a resumed run replays those epochs)."""
        kept = [r for r in self.read() if r.get("epoch", -1) <= epoch]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss and metric curves per epoch, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    losses = [k for k in ("train_loss", "val_loss") if any(k in h for h in history)]
    metrics = sorted({k for h in history for k in h if k.startswith("val_") and k != "val_loss"})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key in losses:
        axes[0].plot(epochs, [h.get(key, float("nan")) for h in history], marker="o", label=key)
    axes[0].set_xlabel("epoch")
    axes[0].set_title("loss")
    for key in metrics:
        axes[1].plot(epochs, [h.get(key, float("nan")) for h in history], marker="o", label=key)
    axes[1].set_xlabel("epoch")
    axes[1].set_title("validation metrics")
    for ax in axes:
        if ax.lines:
            ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def write_summary(run_dir: Path, summary: dict) -> None:
    write_json_atomic(run_dir / "summary.json", summary)


def write_model_card(run_dir: Path, recipe: dict, summary: dict) -> None:
    """A short MODEL_CARD.md: what, on what, how well, how to reproduce."""
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = [
        f"# {run_dir.name}",
        "",
        "Fine-tuned with ftkit.",
        "",
        "## Model",
        f"- backbone: `{recipe['backbone'].get('name')}` (weights: `{recipe['backbone'].get('weights', 'default')}`)",
        f"- head: `{recipe['head'].get('type')}`; task: `{recipe['task']['type']}`",
        f"- freeze strategy: `{recipe['freeze'].get('strategy')}`",
        f"- parameters: {summary.get('params', {}).get('trainable', '?'):,} trainable of "
        f"{summary.get('params', {}).get('total', '?'):,}" if summary.get("params") else "",
        "",
        "## Data",
        f"- format: `{recipe['data'].get('format')}`",
        *(f"- {k}: `{v}`" for k, v in recipe["data"].items() if k != "format"),
        "",
        "## Results",
        "| split | " + " | ".join(sorted({k for m in summary.get("metrics", {}).values() for k in m})) + " |",
    ]
    keys = sorted({k for m in summary.get("metrics", {}).values() for k in m})
    lines.append("|---" * (len(keys) + 1) + "|")
    for split, m in summary.get("metrics", {}).items():
        lines.append(f"| {split} | " + " | ".join(fmt(m.get(k, "")) for k in keys) + " |")
    lines += [
        "",
        f"Best epoch: {summary.get('best_epoch')}; training time {summary.get('train_seconds', 0):.1f} s "
        f"on {summary.get('device')} ({summary.get('precision')}).",
        "",
        "## Reproduce",
        f"`ft run {run_dir / 'recipe.toml'} --set output.dir={run_dir.name}-repro`",
        "",
        "## Limits",
        "Metrics are on the splits above only; check the data card of the dataset for what it covers.",
        "",
    ]
    (run_dir / "MODEL_CARD.md").write_text("\n".join(line for line in lines if line is not None))
