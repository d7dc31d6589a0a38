"""What the built-in loggers record, named once for both.

The trainer's figures arrive as flat dicts (``ft_step_end``,
``ft_epoch_end``) and a summary (``ft_run_end``); this module turns them
into the names a logger shows, so that TensorBoard's tags and MLflow's
metric keys agree:

============================  ====================================
what                          name
============================  ====================================
per step: train_loss          ``train/loss``
per step: lr, lr_GROUP        ``lr``, ``lr/GROUP``
per epoch: val_NAME, test_*   ``val/NAME``, ``test/NAME``
per epoch: train_loss         ``train/epoch_loss``
per epoch: throughput         ``perf/examples_per_s``, ``perf/tokens_per_s``,
                              ``perf/data_wait``, ``perf/peak_mem_mb``
per epoch: anything else      ``epoch/NAME`` (``epoch/lr``, ``epoch/elapsed``)
the final evaluation          ``test_NAME``, ``val_NAME`` (best model), plus
                              ``best_epoch``, ``steps``, ``train_seconds``
============================  ====================================

The run's parameters are the resolved recipe flattened to dotted keys
(``optim.lr``, ``freeze.options.r``); a bare ``ft.Trainer`` has no recipe,
so its ``train.*`` and ``optim.*`` settings stand in.
"""

from __future__ import annotations

import json
import numbers
from typing import Any

#: the per-epoch speed and memory figures of ``ft.meters.EpochMeter.figures``
PERF = ("examples_per_s", "tokens_per_s", "data_wait", "peak_mem_mb")
#: bookkeeping keys that are an axis, not a curve
_AXES = ("step", "epoch")


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The entries that are numbers (a bool or a string is not a curve)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and k not in _AXES}


def step_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """``ft_step_end``'s metrics by the names loggers show."""
    out = {}
    for key, value in _numbers(metrics).items():
        if key == "train_loss":
            out["train/loss"] = value
        elif key.startswith("lr_"):
            out["lr/" + key[3:]] = value
        elif key == "lr":
            out["lr"] = value
        else:
            out["step/" + key] = value
    return out


def epoch_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """``ft_epoch_end``'s metrics by the names loggers show."""
    out = {}
    for key, value in _numbers(metrics).items():
        split, _, name = key.partition("_")
        if key == "train_loss":
            out["train/epoch_loss"] = value
        elif split in ("train", "val", "test") and name:
            out[f"{split}/{name}"] = value
        elif key in PERF:
            out["perf/" + key] = value
        else:
            out["epoch/" + key] = value
    return out


def final_scalars(summary: dict[str, Any]) -> dict[str, float]:
    """The run's outcome from ``ft_run_end``'s summary: the final
    evaluation per split (``test_accuracy``, ``val_loss``; a bare trainer:
    its last epoch's figures) and how training went."""
    out = {}
    for split, figures in (summary.get("metrics") or {}).items():
        out.update({f"{split}_{name}": value for name, value in _numbers(figures).items()})
    out.update(_numbers({k: summary.get(k) for k in ("best_epoch", "steps", "train_seconds")}))
    return out


def run_params(run: Any) -> dict[str, str | int | float | bool]:
    """The run's settings as flat dotted keys with scalar values: the
    resolved recipe, or a bare trainer's ``train`` and ``optim`` sections.
    Lists and other non-scalars become their JSON text; unset (None)
    values are left out."""
    if run.recipe is not None:
        tree = run.recipe.to_dict()
    else:
        tree = {"train": run.trainer.cfg.model_dump(mode="json"),
                "optim": run.trainer.optim_cfg.model_dump(mode="json")}
    return dict(_flatten(tree, ""))


def _flatten(tree: dict, prefix: str):
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, name + ".")
        elif value is None:
            continue
        elif isinstance(value, (str, bool, int, float)):
            yield name, value
        else:
            yield name, json.dumps(value, default=str)


def run_tags(run: Any) -> dict[str, str]:
    """What a run is at a glance: ftkit's version, the backbone and the
    freeze strategy (a bare trainer: the model's and strategy's class)."""
    import ft

    if run.recipe is not None:
        backbone, strategy = run.recipe.backbone.name, run.recipe.freeze.name
    else:
        backbone = type(getattr(run.model, "backbone", run.model)).__name__
        strategy = str(run.trainer.strategy.describe().get("strategy", type(run.trainer.strategy).__name__))
    return {"ftkit.version": ft.__version__, "ftkit.backbone": backbone, "ftkit.strategy": strategy}
