"""A tiny plugin used by the core tests: a small MLP backbone on in-memory
Gaussian blobs (or a CSV of numbers). It proves the engine without timm,
transformers or torchaudio, and doubles as the smallest example plugin."""

from __future__ import annotations

import csv
import hashlib
import time
from pathlib import Path

import torch
from pydantic import Field
from torch import nn
from torch.utils.data import Dataset

import ft
from ft.activation_checkpointing import checkpoint_modules
from ft.contracts import Backbone, DataBundle, TaskInfo, groups_by_prefix
from ft.errors import DataError
from ft.specs import BackboneSpec, DatasetFormatSpec, ExistingPath, Options, SectionSpec

IN_DIM = 8


class ToyOptions(Options):
    width: int = Field(32, ge=2)
    feature_dim: int = Field(16, ge=2)
    weights: ExistingPath | None = None
    batchnorm: bool = True


class ToyBackbone(Backbone):
    """embed (Linear+BatchNorm) -> block1 -> block2 (Linear+LayerNorm) -> features."""

    def __init__(self, width: int = 32, feature_dim: int = 16, noise: float = 0.0, batchnorm: bool = True):
        super().__init__()
        self.feature_dim = feature_dim
        self.noise = noise
        norm = nn.BatchNorm1d(width) if batchnorm else nn.Identity()
        self.embed = nn.Sequential(nn.Linear(IN_DIM, width), norm, nn.ReLU())
        self.block1 = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.block2 = nn.Sequential(nn.Linear(width, feature_dim), nn.LayerNorm(feature_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(self.embed(x)))

    def layer_groups(self):
        return groups_by_prefix(self, [("embed", ["embed"]), ("block1", ["block1"]), ("block2", ["block2"])])

    def enable_activation_checkpointing(self) -> None:
        """No library switch here: ft recomputes each block in backward."""
        checkpoint_modules([self.embed, self.block1, self.block2])

    def fsdp_units(self) -> list[nn.Module]:
        """One FSDP unit per block, input to output."""
        return [self.embed, self.block1, self.block2]

    def preprocess(self, train: bool):
        if not train or self.noise == 0:
            return None
        noise = self.noise
        return lambda x: x + noise * torch.randn_like(x)  # global RNG on purpose: resume must restore it

    def describe(self) -> dict:
        return {"class": "ToyBackbone", "feature_dim": self.feature_dim}


def build_backbone(options: ToyOptions, ctx) -> ToyBackbone:
    torch.manual_seed(1234)  # "pretrained" = a fixed init
    backbone = ToyBackbone(options.width, options.feature_dim, batchnorm=options.batchnorm)
    if options.weights is not None and ctx.load_pretrained:
        from safetensors.torch import load_file

        backbone.load_state_dict(load_file(str(options.weights)))
    return backbone


class BlobOptions(Options):
    n_classes: int = Field(3, ge=2)
    n_train: int = Field(240, ge=1)
    n_val: int = Field(60, ge=0)
    n_test: int = Field(60, ge=0)
    spread: float = Field(1.0, gt=0)
    augment_noise: float = Field(0.0, ge=0, description="random noise added to training inputs")
    csv: ExistingPath | None = Field(None, description="rows of 8 numbers then a label; replaces the blobs")
    seed: int = 0
    delay: float = Field(0.0, ge=0, description="seconds to wait per training example (a slow loader, for tests "
                                                "that interrupt a run)")


class Pairs(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform=None, delay: float = 0.0):
        self.x, self.y, self.transform, self.delay = x, y, transform, delay

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        x = self.x[i]
        return (self.transform(x) if self.transform else x), self.y[i]


def make_blobs(o: BlobOptions, task_type: str):
    g = torch.Generator().manual_seed(o.seed)
    centers = torch.randn(o.n_classes, IN_DIM, generator=g) * 2.0
    n = o.n_train + o.n_val + o.n_test
    labels = torch.arange(n) % o.n_classes
    x = centers[labels] + o.spread * torch.randn(n, IN_DIM, generator=g)
    y = labels if task_type == "classification" else (labels.float() + 0.1 * torch.randn(n, generator=g))
    return x, y


def read_csv(path: Path):
    rows, labels = [], []
    with path.open() as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            try:
                rows.append([float(v) for v in row[:IN_DIM]])
                labels.append(int(row[IN_DIM]))
            except (ValueError, IndexError):
                raise DataError(f"row {lineno}: expected {IN_DIM} numbers and an integer label, found {row}",
                                where=str(path)) from None
    return torch.tensor(rows), torch.tensor(labels)


def build_blobs(o: BlobOptions, backbone: Backbone, ctx) -> DataBundle:
    if o.csv is not None:
        x, y = read_csv(o.csv)
        n_classes = int(y.max()) + 1
    else:
        x, y = make_blobs(o, ctx.task_type)
        n_classes = o.n_classes
    backbone.noise = o.augment_noise
    a, b = o.n_train, o.n_train + o.n_val
    train = Pairs(x[:a], y[:a], backbone.preprocess(train=True), o.delay)
    val = Pairs(x[a:b], y[a:b]) if o.n_val else None
    test = Pairs(x[b:], y[b:]) if o.n_test else None
    if ctx.task_type == "classification":
        task = TaskInfo("classification", n_classes, tuple(f"class_{i}" for i in range(n_classes)))
    else:
        task = TaskInfo("regression", 1, ("value",))
    fingerprint = hashlib.sha1(x.numpy().tobytes()).hexdigest()
    return DataBundle(train, val, test, task, train_augmented=o.augment_noise > 0,
                      train_eval=Pairs(x[:a], y[:a]), fingerprint=fingerprint, info={"n_classes": n_classes})


def read_input(raw: str, options: BlobOptions, backbone: Backbone):
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        raise DataError(f"expected {IN_DIM} comma-separated numbers", where=f"input {raw!r}") from None
    return torch.tensor(values)


class RecorderSection(Options):
    tag: str = "default"


class Recorder:
    """Records lifecycle events (a logger plugin in miniature)."""

    def __init__(self):
        self.events: list[tuple] = []

    @ft.hookimpl
    def ft_run_start(self, run):
        self.events.append(("start", run.run_dir))

    @ft.hookimpl
    def ft_epoch_end(self, run, epoch, metrics):
        self.events.append(("epoch", epoch, dict(metrics)))

    @ft.hookimpl
    def ft_checkpoint_saved(self, run, path, epoch):
        self.events.append(("checkpoint", epoch, Path(path)))

    @ft.hookimpl
    def ft_run_end(self, run, summary):
        self.events.append(("end", summary["metrics"]))


@ft.hookimpl
def ft_backbones():
    return [BackboneSpec("toy_mlp", build_backbone, ToyOptions, description="tiny MLP for tests")]


@ft.hookimpl
def ft_dataset_formats():
    return [DatasetFormatSpec("toy_blobs", build_blobs, BlobOptions, read_input=read_input,
                              tasks=("classification", "regression"))]


@ft.hookimpl
def ft_recipe_sections():
    return [SectionSpec("recorder", RecorderSection)]


# -- recipes for tests --------------------------------------------------------


def toy_recipe(tmp_path: Path, **sections) -> dict:
    """A small, fast classification recipe on toy blobs."""
    recipe = {
        "task": {"type": "classification"},
        "data": {"format": "toy_blobs"},
        "backbone": {"name": "toy_mlp"},
        "head": {"type": "linear"},
        "freeze": {"strategy": "full"},
        "optim": {"lr": 1e-2, "schedule": "constant"},
        "train": {"epochs": 3, "batch_size": 16, "progress": False},
        "output": {"dir": str(tmp_path / "run")},
    }
    for name, values in sections.items():
        recipe.setdefault(name, {}).update(values)
    return recipe



def write_recipe(path: Path, recipe: dict) -> Path:
    import tomli_w

    path.write_text(tomli_w.dumps(recipe))
    return path
