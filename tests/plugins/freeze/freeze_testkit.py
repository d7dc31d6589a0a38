"""Helpers for the freeze-strategy tests: a recording callback, a tiny
transformer backbone with a learnable token task (registered as an in-test
plugin), and a source/target data format with a domain shift for AdaBN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.utils.data import Dataset

import ft
from ft.contracts import Backbone, DataBundle, TaskInfo, groups_by_prefix
from ft.specs import BackboneSpec, DatasetFormatSpec, Options

import toy_plugin

#: fast toy settings: no checkpoints (fsync is slow on a shared machine), constant LR
FAST = {"checkpoint": False}


class Recorder:
    """Snapshots at run start and after every epoch.

    ``states[k]``: the model's state dict after epoch k (``states[0]``: at the
    start). ``lrs[k]``: ``{ft_group: lr}`` of the optimizer when epoch k
    (0-based) begins, read from ``run.trainer.optimizer.param_groups``.
    ``metrics[k-1]``: epoch k's metrics. ``extra`` holds ``probe(run)`` values.
    """

    def __init__(self, probe=None):
        self.states: list[dict[str, torch.Tensor]] = []
        self.lrs: list[dict[str, float]] = []
        self.metrics: list[dict] = []
        self.extra: list = []
        self.probe = probe

    def _take(self, run) -> None:
        self.states.append({k: v.detach().clone() for k, v in run.model.state_dict().items()})
        lrs: dict[str, set] = {}
        for group in run.trainer.optimizer.param_groups:
            lrs.setdefault(group["ft_group"], set()).add(group["lr"])
        assert all(len(v) == 1 for v in lrs.values()), lrs  # decay / no-decay halves share the group's LR
        self.lrs.append({k: v.pop() for k, v in lrs.items()})
        if self.probe is not None:
            self.extra.append(self.probe(run))

    def ft_run_start(self, run) -> None:
        self._take(run)

    def ft_epoch_end(self, run, epoch, metrics) -> None:
        self.metrics.append(dict(metrics))
        self._take(run)


def group_of(key: str) -> str:
    """Layer group of a toy-model state-dict key: ``backbone.embed.1.weight`` -> ``embed``."""
    parts = key.split(".")
    return parts[1] if parts[0] == "backbone" else "head"


def changed(a: dict, b: dict, key: str) -> bool:
    return not torch.equal(a[key], b[key])


# -- a transformer-like backbone with a learnable token task ------------------------


class Block(nn.Module):
    """Pre-norm transformer block: q/k/v/o attention and a 2-layer MLP."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (lin(h).view(b, t, self.heads, d // self.heads).transpose(1, 2) for lin in (self.q, self.k, self.v))
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(att)
        return x + self.mlp(self.ln2(x))


class TinyTransformer(Backbone):
    """Token embedding, 2 pre-norm blocks, final LayerNorm, mean pooling."""

    def __init__(self, vocab: int = 64, d: int = 128, heads: int = 4, layers: int = 2):
        super().__init__()
        self.feature_dim = d
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.norm(x).mean(1)

    def layer_groups(self):
        last = len(self.blocks) - 1
        spec = [("embed", ["embed"])] + [(f"block{i}", [f"blocks.{i}"] + (["norm"] if i == last else []))
                                         for i in range(len(self.blocks))]
        return groups_by_prefix(self, spec)


class TokenOptions(Options):
    n_train: int = Field(256, ge=1)
    length: int = Field(15, ge=1)
    vocab: int = Field(64, ge=4)
    seed: int = 0


class Pairs(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], (None if self.y is None else self.y[i])


def build_tokens(o: TokenOptions, backbone, ctx) -> DataBundle:
    """Random token sequences; label 1 if most tokens are from the upper half of the vocabulary."""
    g = torch.Generator().manual_seed(o.seed)
    n = o.n_train + 128
    x = torch.randint(0, o.vocab, (n, o.length), generator=g)
    y = ((x >= o.vocab // 2).sum(1) > o.length // 2).long()
    a = o.n_train
    return DataBundle(Pairs(x[:a], y[:a]), Pairs(x[a:a + 64], y[a:a + 64]), Pairs(x[a + 64:], y[a + 64:]),
                      TaskInfo("classification", 2, ("low", "high")))


class ShiftOptions(toy_plugin.BlobOptions):
    shift: float = Field(3.0, description="constant added to every input of the target domain")


def build_shifted(o: ShiftOptions, backbone, ctx) -> DataBundle:
    """Toy blobs: train/val from the source domain; test and unlabeled from
    the target domain (inputs + shift). Unlabeled targets are None."""
    x, y = toy_plugin.make_blobs(o, "classification")
    a, b = o.n_train, o.n_train + o.n_val
    target = x[b:] + o.shift
    half = len(target) // 2
    task = TaskInfo("classification", o.n_classes, tuple(f"class_{i}" for i in range(o.n_classes)))
    return DataBundle(Pairs(x[:a], y[:a]), Pairs(x[a:b], y[a:b]), Pairs(target[half:], y[b:][half:]), task,
                      unlabeled=Pairs(target[:half], None))


class ExtraPlugin:
    """The in-test plugin: ``tiny_transformer`` backbone, ``tokens`` and ``shifted_blobs`` data."""

    @ft.hookimpl
    def ft_backbones(self):
        def build(options, ctx):
            torch.manual_seed(4321)  # "pretrained" = a fixed init
            return TinyTransformer()

        return [BackboneSpec("tiny_transformer", build, description="2-block transformer for tests")]

    @ft.hookimpl
    def ft_dataset_formats(self):
        return [DatasetFormatSpec("tokens", build_tokens, TokenOptions, tasks=("classification",)),
                DatasetFormatSpec("shifted_blobs", build_shifted, ShiftOptions, tasks=("classification",))]


def transformer_recipe(make_recipe, **sections) -> dict:
    recipe = make_recipe(data={"format": "tokens"}, backbone={"name": "tiny_transformer"},
                         train={"batch_size": 32, **FAST})
    for name, values in sections.items():
        recipe.setdefault(name, {}).update(values)
    return recipe
