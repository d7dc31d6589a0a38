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
"""

from __future__ import annotations

import gzip
import struct
from collections import Counter
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
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read the idx file: {exc}", where=str(path)) from None
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


def build_idx(options: IdxOptions, backbone: Backbone, ctx) -> DataBundle:
    paths = {k: getattr(options, k) for k in STANDARD_NAMES}
    if options.dir is not None:
        paths.update({k: standard_file(options.dir, k) for k in STANDARD_NAMES})
        if paths["train_images"] is None or paths["train_labels"] is None:
            raise DataError(f"no {STANDARD_NAMES['train_images']}[.gz] / {STANDARD_NAMES['train_labels']}[.gz]",
                            where=f"data.dir = {options.dir}", hint="or give data.train_images and data.train_labels")
        if (paths["test_images"] is None) != (paths["test_labels"] is None):
            paths["test_images"] = paths["test_labels"] = None
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
    sources = {}
    for split, (images, labels) in pairs.items():
        bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
        if len(bad):
            label_file = paths[f"{split}_labels"]
            if not options.skip_bad:
                raise DataError(f"label {int(labels[bad[0]])} of item {int(bad[0])} is outside the {len(classes)} "
                                f"classes of data.names", where=str(label_file),
                                hint="fix data.names, or set data.skip_bad = true to skip such items")
            skipped["label_out_of_range"] += len(bad)
            skipped_files += [f"{label_file} item {int(i)}: label {int(labels[i])}" for i in bad[:50]]
        good = np.setdiff1d(np.arange(len(labels)), bad)
        sources[split] = ArraySource(images, good, labels[good])
    files = [file_line(p) for p in paths.values() if p is not None] + [f"names={classes}"]
    shape = list(pairs["train"][0].shape[1:])
    return build_bundle(sources, classes, options, backbone, where, files, skipped, skipped_files,
                        {"layout": "idx", "image_shape": shape,
                         "files": {k: str(v) for k, v in paths.items() if v is not None}})
