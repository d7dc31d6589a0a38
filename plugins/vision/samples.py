"""Tiny sample data sets of the vision formats, for the conformance kit
(:mod:`ft.testing`): 3 classes of coloured squares, 6 images each, 16 x 16
pixels, drawn with numpy. Each function writes under ``folder`` and returns
the ``[data]`` options (without ``format``)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ft.csv_table import write_csv

from .idx import STANDARD_NAMES

CLASSES = ("red", "green", "blue")
PER_CLASS, SIZE = 6, 16
#: small enough to build in a second, still a real timm model
TIMM_SAMPLE = {"model": "test_resnet", "weights": "random", "image_size": 32}
LITE0_SAMPLE = {"weights": "packaged", "image_size": 32}


def _image(label: int, seed: int) -> np.ndarray:
    """A light noisy background with a square in the class's colour channel."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(180, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    x, y = rng.integers(0, SIZE // 2, 2)
    pixels[y:y + SIZE // 2, x:x + SIZE // 2] = 40
    pixels[y:y + SIZE // 2, x:x + SIZE // 2, label] = 230
    return pixels


def _write_images(root: Path) -> list[tuple[str, str]]:
    from PIL import Image

    rows = []
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            path = root / name / f"{i}.png"
            Image.fromarray(_image(label, seed=label * 100 + i)).save(path)
            rows.append((f"{name}/{i}.png", name))
    return rows


def image_folder_sample(folder: Path) -> dict:
    """``ROOT/<class>/<image>.png``."""
    root = Path(folder).resolve() / "images"
    _write_images(root)
    return {"path": str(root), "val_fraction": 0.2}


def image_csv_sample(folder: Path) -> dict:
    """A CSV ``path,label`` next to the images."""
    root = Path(folder).resolve()
    rows = _write_images(root / "images")
    table = root / "labels.csv"
    write_csv(table, ["path", "label"], [(f"images/{p}", label) for p, label in rows])
    return {"path": str(table), "val_fraction": 0.2}


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def idx_sample(folder: Path) -> dict:
    """MNIST-style gzipped idx files (grey images) with the standard names."""
    root = Path(folder).resolve() / "idx"
    root.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", PER_CLASS), ("test", 2)):
        labels = np.repeat(np.arange(len(CLASSES)), count)
        images = np.stack([_image(int(k), seed=i).mean(-1) for i, k in enumerate(labels)])
        _write_idx(root / f"{STANDARD_NAMES[f'{split}_images']}.gz", images)
        _write_idx(root / f"{STANDARD_NAMES[f'{split}_labels']}.gz", labels)
    return {"dir": str(root), "names": list(CLASSES), "val_fraction": 0.2}
