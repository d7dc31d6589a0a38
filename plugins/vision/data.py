"""What the image formats share: options, seeded splits, datasets, the bundle.

A format (``image_folder``, ``image_csv``, ``idx``) turns its input into one
:class:`ImageSource` per split it has (``train``, maybe ``val`` / ``test``)
and the class names; :func:`build_bundle` does the rest the same way for all:
a seeded, stratified validation (and optional test) split off ``train`` when
the data has none, ``limit_per_class`` per split, timm transforms from the
backbone, and the facts saved in the run's data.json.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import Field, model_validator
from torch.utils.data import Dataset

from ft.contracts import Backbone, DataBundle, TaskInfo
from ft.errors import DataError, FtError

from .transforms import (BAD_DATA_HINT, CHANGED_DATA_HINT, AugmentOptions, describe_config, image_transforms,
                         load_rgb, to_rgb)


class VisionDataOptions(AugmentOptions):
    """Options shared by the image formats (``[data]``)."""

    val_fraction: float = Field(0.1, ge=0, lt=1, description="validation share of train when the data has no "
                                                             "validation split (stratified, seeded)")
    val_size: int | None = Field(None, ge=0, description="validation images taken from train (stratified, "
                                                         "seeded); when set, val_fraction is not used")
    test_fraction: float = Field(0.0, ge=0, lt=1, description="test share of train when the data has no test "
                                                              "split; 0 = no test split")
    seed: int = Field(0, description="seed of the splits and of limit_per_class")
    limit_per_class: int | None = Field(None, ge=1, description="keep at most N images per class in each split "
                                                                "(after splitting)")
    skip_bad: bool = Field(False, description="skip and count missing or undecodable images and bad labels "
                                              "instead of stopping; every image file is then decoded once when "
                                              "the data is built")

    @model_validator(mode="after")
    def _fractions(self):
        # val_size with val_fraction is not an error: a run's resolved recipe lists every option
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        return self


# -- sources and datasets -----------------------------------------------------------


class ImageFiles(Dataset):
    """``(transform(RGB image), class index)`` from image files, decoded per item.

    ``decoded_at_build``: every file decoded when the data was built
    (``skip_bad``), so one failing now changed during the run, and the
    error says so instead of suggesting ``skip_bad``.
    """

    def __init__(self, paths: list[Path], labels: np.ndarray, transform: Callable | None, wheres: list[str],
                 decoded_at_build: bool = False):
        self.paths, self.labels, self.transform, self.wheres = paths, labels, transform, wheres
        self.decoded_at_build = decoded_at_build

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        hint = CHANGED_DATA_HINT if self.decoded_at_build else BAD_DATA_HINT
        image = load_rgb(self.paths[i], self.wheres[i], hint)
        return (self.transform(image) if self.transform else image), int(self.labels[i])


class ImageArrays(Dataset):
    """``(transform(RGB image), class index)`` from a shared uint8 array
    ``[N, H, W]`` or ``[N, H, W, C]`` kept in memory; ``index`` selects rows."""

    def __init__(self, images: np.ndarray, index: np.ndarray, labels: np.ndarray, transform: Callable | None):
        self.images, self.index, self.labels, self.transform = images, index, labels, transform

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        from PIL import Image

        array = self.images[self.index[i]]
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        image = to_rgb(Image.fromarray(array))
        return (self.transform(image) if self.transform else image), int(self.labels[i])


class FileSource:
    """Image files with class indices (one split's worth); ``decoded_at_build``
    as in :class:`ImageFiles`."""

    def __init__(self, paths: list[Path], labels: np.ndarray, wheres: list[str], decoded_at_build: bool = False):
        self.paths, self.labels, self.wheres = paths, np.asarray(labels, dtype=np.int64), wheres
        self.decoded_at_build = decoded_at_build

    def subset(self, index: np.ndarray) -> "FileSource":
        return FileSource([self.paths[i] for i in index], self.labels[index], [self.wheres[i] for i in index],
                          self.decoded_at_build)

    def dataset(self, transform: Callable | None) -> Dataset:
        return ImageFiles(self.paths, self.labels, transform, self.wheres, self.decoded_at_build)


class ArraySource:
    """Rows ``index`` of an in-memory uint8 image array, with class indices."""

    def __init__(self, images: np.ndarray, index: np.ndarray, labels: np.ndarray):
        self.images, self.index, self.labels = images, np.asarray(index), np.asarray(labels, dtype=np.int64)

    def subset(self, index: np.ndarray) -> "ArraySource":
        return ArraySource(self.images, self.index[index], self.labels[index])

    def dataset(self, transform: Callable | None) -> Dataset:
        return ImageArrays(self.images, self.index, self.labels, transform)


# -- splitting ----------------------------------------------------------------------


def _by_class(labels: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """Per class, its positions in a seeded random order."""
    rng = np.random.default_rng(seed)
    return {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}


def _quotas(sizes: dict[int, int], total: int) -> dict[int, int]:
    """``total`` spread over classes in proportion to their sizes (largest
    remainder), each class keeping at least one item when it has two."""
    n = sum(sizes.values())
    exact = {c: total * s / n for c, s in sizes.items()} if n else {}
    quota = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: (quota[c] - exact[c], c))[: max(0, total - sum(quota.values()))]:
        quota[c] += 1
    return {c: min(q, sizes[c] - 1) if sizes[c] > 1 else 0 for c, q in quota.items()}


def split_off(labels: np.ndarray, fraction: float, count: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split: ``(kept, taken)`` positions, each sorted.

    ``count`` images in all (spread by class size), else ``fraction`` of each
    class (at least one from a class of three or more).
    """
    groups = _by_class(labels, seed)
    if count is not None:
        quota = _quotas({c: len(g) for c, g in groups.items()}, min(count, len(labels)))
    else:
        quota = {c: (max(1, round(len(g) * fraction)) if len(g) >= 3 else 0) if fraction > 0 else 0
                 for c, g in groups.items()}
    taken = np.concatenate([g[:quota[c]] for c, g in groups.items()] + [np.zeros(0, dtype=np.int64)])
    kept = np.concatenate([g[quota[c]:] for c, g in groups.items()] + [np.zeros(0, dtype=np.int64)])
    return np.sort(kept).astype(np.int64), np.sort(taken).astype(np.int64)


def limit_per_class(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Positions to keep: at most ``limit`` per class, seeded, in original order."""
    if limit is None:
        return np.arange(len(labels))
    groups = _by_class(labels, seed)
    return np.sort(np.concatenate([g[:limit] for g in groups.values()] + [np.zeros(0, dtype=np.int64)]))


# -- the bundle ----------------------------------------------------------------------


def fingerprint(options: VisionDataOptions, backbone: Backbone, files: list[str]) -> str:
    """Hash of the file list (names and sizes), the options and the preprocessing."""
    digest = hashlib.sha1()
    digest.update(json.dumps(options.model_dump(mode="json"), sort_keys=True).encode())
    digest.update(json.dumps(describe_config(getattr(backbone, "data_config", None) or {}), sort_keys=True).encode())
    for line in files:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def file_line(path: Path, label: str | None = None, split: str | None = None) -> str:
    return f"{path}|{path.stat().st_size}|{label}|{split}"


def build_bundle(sources: dict, classes: list[str], options: VisionDataOptions, backbone: Backbone, where: str,
                 files: list[str], skipped: Counter, skipped_files: list[str], extra_info: dict | None = None
                 ) -> DataBundle:
    """Split, limit and wrap a format's sources (``train`` and maybe ``val``,
    ``test``) into a DataBundle with the backbone's transforms."""
    train_tf, eval_tf, random_train = image_transforms(backbone, options)
    if eval_tf is None:
        raise FtError(f"backbone {type(backbone).__name__} has no image preprocessing (preprocess() gives None), "
                      "so the image formats cannot serve it", hint="use a vision backbone (timm, efficientnet_lite0)")
    sources = dict(sources)
    train = sources["train"]
    split_method = {s: "given" for s in sources}
    test_share = 0.0
    if "test" not in sources and options.test_fraction > 0:
        kept, taken = split_off(train.labels, options.test_fraction, None, options.seed + 1)
        sources["test"], train = train.subset(taken), train.subset(kept)
        split_method["test"], test_share = "stratified from train", options.test_fraction
    if "val" not in sources and (options.val_size or (options.val_size is None and options.val_fraction > 0)):
        share = min(0.99, options.val_fraction / (1 - test_share))  # of what the test split left
        kept, taken = split_off(train.labels, share, options.val_size, options.seed)
        sources["val"], train = train.subset(taken), train.subset(kept)
        split_method["val"] = "stratified from train"
    sources["train"] = train
    limited = {}
    for split in ("train", "val", "test"):
        if split in sources:
            chosen = sources[split].subset(limit_per_class(sources[split].labels, options.limit_per_class,
                                                           options.seed))
            if len(chosen.labels):
                limited[split] = chosen
    sources = limited
    if "train" not in sources:
        raise DataError("the training split is empty", where=where)
    missing = [classes[c] for c in range(len(classes)) if not np.any(sources["train"].labels == c)]
    if missing:
        raise DataError(f"no training images for class(es) {', '.join(map(repr, missing))}", where=where,
                        hint="every class needs images in the training split (check skipped files and the split)")

    counts = {s: {classes[c]: int(n) for c, n in sorted(Counter(src.labels.tolist()).items())}
              for s, src in sources.items()}
    info = {
        "source": where, "classes": list(classes), "counts": counts, "split": split_method,
        "skipped": dict(skipped), "skipped_files": skipped_files[:50],
        "preprocessing": describe_config(getattr(backbone, "data_config", None) or {}),
        "train_augmented": random_train, **(extra_info or {}),
    }
    sizes = " / ".join(f"{s} {len(src.labels)}" for s, src in sources.items())
    print(f"vision: {where}: {len(classes)} classes, {sizes} images", flush=True)
    if skipped:
        print(f"vision: skipped {sum(skipped.values())} bad item(s): "
              + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) + " (listed in data.json)", flush=True)

    def make(split: str, transform):
        return sources[split].dataset(transform) if split in sources else None

    return DataBundle(
        train=make("train", train_tf), val=make("val", eval_tf), test=make("test", eval_tf),
        task=TaskInfo("classification", len(classes), tuple(classes)),
        train_augmented=random_train, train_eval=make("train", eval_tf),
        fingerprint=fingerprint(options, backbone, files), info=info,
    )


def read_input(raw: str, options: VisionDataOptions, backbone: Backbone):
    """One ``ft predict`` argument (an image file) -> the evaluation transform's tensor."""
    path = Path(raw).expanduser()
    if not path.is_file():
        raise DataError("image file not found", where=raw)
    _, eval_tf, _ = image_transforms(backbone, options)
    return eval_tf(load_rgb(path, hint="ft predict needs an image file PIL can decode (png, jpg, ...)"))
