"""Dataset format ``idx``: MNIST-style idx-ubyte files (plain or .gz).

The idx format (LeCun's MNIST files, Fashion-MNIST, KMNIST, EMNIST): two
zero bytes, a type byte (0x08 = uint8), the number of dimensions, each
dimension as a big-endian uint32, then the data. Images are ``[N, H, W]``
(or ``[N, H, W, C]``) uint8, labels ``[N]``. The decoded arrays stay in
memory as uint8 (Fashion-MNIST: 47 MB for 60,000 + 10,000 images); each item
becomes an RGB PIL image only when it is read.

Give the four files, or ``dir`` with the standard names
(``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``; the test
pair is optional). Debian's ``dataset-fashion-mnist`` package installs them
in ``/usr/share/datasets/fashion-mnist``.

A damaged file (wrong magic number, cut short, image and label counts that
differ) is an error naming it, even with ``skip_bad``: its items cannot be
told apart. ``skip_bad`` skips and counts items whose label is outside the
class names. An item is named by its 0-based index in the file (``item 3``).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ft.contracts import Backbone, DataBundle
from ft.errors import DataError
from ft.specs import ExistingPath

from .data import ArraySource, VisionDataOptions, build_bundle, file_line

DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32, 0x0E: np.float64}
STANDARD_NAMES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


class IdxOptions(VisionDataOptions):
    """``idx``: images and labels in idx-ubyte files."""

    dir: ExistingPath | None = Field(None, description="folder with the standard file names (.gz or not)")
    train_images: ExistingPath | None = None
    train_labels: ExistingPath | None = None
    test_images: ExistingPath | None = None
    test_labels: ExistingPath | None = None
    names: Literal["digits", "fashion_mnist"] | list[str] = Field(
        "digits", description="class names: \"fashion_mnist\" (its 10 names), \"digits\" (the label values) "
                              "or a list indexed by label")

    @model_validator(mode="after")
    def _files(self):
        if self.dir is None and (self.train_images is None or self.train_labels is None):
            raise ValueError("give dir, or train_images and train_labels")
        if self.dir is not None and (self.train_images is not None or self.train_labels is not None):
            raise ValueError("give dir or train_images/train_labels, not both")
        if (self.test_images is None) != (self.test_labels is None):
            raise ValueError("give both test_images and test_labels, or neither")
        return self


def read_idx(path: Path) -> np.ndarray:
    """Decode one idx file (gzip detected by its magic bytes)."""
    if path.is_dir():
        raise DataError("expected an idx file, found a folder", where=str(path),
                        hint="give the folder as data.dir, or the files as data.train_images / data.train_labels")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"cannot read the idx file: {exc}", where=str(path),
                        hint="the file is damaged or cut short (an interrupted download?): fetch it again") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in DTYPES or raw[3] == 0:
        raise DataError(f"not an idx file (header {raw[:4].hex(' ')})", where=str(path),
                        hint="expected two zero bytes, a type byte (0x08 = uint8) and the number of dimensions")
    dtype, ndim = np.dtype(DTYPES[raw[2]]).newbyteorder(">"), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError("idx header is cut short", where=str(path))
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"idx data is {len(raw) - header} bytes but shape {list(shape)} needs {expected}",
                        where=str(path), hint="the file is truncated or not an idx file")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else array


def standard_file(folder: Path, key: str) -> Path | None:
    for name in (STANDARD_NAMES[key] + ".gz", STANDARD_NAMES[key]):
        if (folder / name).is_file():
            return folder / name
    return None


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DataError(f"expected uint8 images [N, H, W] or [N, H, W, 1|3], found {images.dtype} "
                        f"{list(images.shape)}", where=str(images_path))
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"expected integer labels [N], found {labels.dtype} {list(labels.shape)}",
                        where=str(labels_path))
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels in {labels_path.name}", where=str(images_path))
    return images, labels.astype(np.int64)


@dataclass
class IdxData:
    """What the build and the check share: the files, the decoded
    ``(images, labels)`` per split, the class names, and per split the
    positions of the items kept (labels in range)."""

    paths: dict[str, Path | None]
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    classes: list[str]
    kept: dict[str, np.ndarray]
    skipped: Counter
    skipped_files: list[str]
    where: str


def idx_paths(options: IdxOptions) -> dict[str, Path | None]:
    """The four files (test ones may be None) from ``dir`` or the options."""
    paths = {k: getattr(options, k) for k in STANDARD_NAMES}
    if options.dir is not None:
        if not options.dir.is_dir():
            raise DataError("data.dir must be a folder with the idx files", where=f"data.dir = {options.dir}",
                            hint="or give the files as data.train_images and data.train_labels")
        paths.update({k: standard_file(options.dir, k) for k in STANDARD_NAMES})
        if paths["train_images"] is None or paths["train_labels"] is None:
            raise DataError(f"no {STANDARD_NAMES['train_images']}[.gz] / {STANDARD_NAMES['train_labels']}[.gz]",
                            where=f"data.dir = {options.dir}", hint="or give data.train_images and data.train_labels")
        if (paths["test_images"] is None) != (paths["test_labels"] is None):
            paths["test_images"] = paths["test_labels"] = None
    return paths


def load_idx(options: IdxOptions) -> IdxData:
    """Read and check the files (the whole decode: gzip has no cheaper way
    to find a cut-short file), resolve the class names and find the items
    whose label is out of range (an error, or skipped with ``skip_bad``)."""
    paths = idx_paths(options)
    where = f"idx {options.dir or paths['train_images']}"
    pairs = {"train": read_pair(paths["train_images"], paths["train_labels"])}
    if paths["test_images"] is not None:
        pairs["test"] = read_pair(paths["test_images"], paths["test_labels"])

    top = max(int(labels.max(initial=0)) for _, labels in pairs.values())
    if options.names == "fashion_mnist":
        classes = list(FASHION_MNIST)
    elif options.names == "digits":
        classes = [str(i) for i in range(top + 1)]
    else:
        classes = list(options.names)
    skipped, skipped_files = Counter(), []
    kept = {}
    for split, (images, labels) in pairs.items():
        bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
        if len(bad):
            label_file = paths[f"{split}_labels"]
            if not options.skip_bad:
                raise DataError(f"{len(bad)} item(s) have a label outside the {len(classes)} classes of "
                                f"data.names; the first: item {int(bad[0])} (0-based) has label "
                                f"{int(labels[bad[0]])}", where=str(label_file),
                                hint="fix data.names, or set data.skip_bad = true to skip such items")
            skipped["label_out_of_range"] += len(bad)
            skipped_files += [f"{label_file} item {int(i)}: label {int(labels[i])}" for i in bad[:50]]
        kept[split] = np.setdiff1d(np.arange(len(labels)), bad)
    return IdxData(paths, pairs, classes, kept, skipped, skipped_files, where)


def build_idx(options: IdxOptions, backbone: Backbone, ctx) -> DataBundle:
    data = load_idx(options)
    sources = {split: ArraySource(images, data.kept[split], labels[data.kept[split]])
               for split, (images, labels) in data.pairs.items()}
    files = [file_line(p) for p in data.paths.values() if p is not None] + [f"names={data.classes}"]
    shape = list(data.pairs["train"][0].shape[1:])
    return build_bundle(sources, data.classes, options, backbone, data.where, files, data.skipped,
                        data.skipped_files, {"layout": "idx", "image_shape": shape,
                                             "files": {k: str(v) for k, v in data.paths.items() if v is not None}})
