"""Helpers for the vision tests: coloured shapes drawn with PIL, idx files.

Nothing here needs a download: images are drawn in the test; the
Fashion-MNIST files are used only where Debian's dataset-fashion-mnist
package installed them.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(
    not (FASHION_DIR / "train-labels-idx1-ubyte.gz").exists(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist; CI installs it)")

#: class -> (shape, RGB colour); colour and shape both tell the class
SHAPES = {"circle": ("ellipse", (220, 40, 40)), "square": ("rectangle", (40, 160, 40)),
          "triangle": ("polygon", (40, 60, 220))}


def draw_shape(kind: str, colour: tuple[int, int, int], size: int = 40, seed: int = 0, mode: str = "RGB"):
    """One shape with a jittered position and size on a light noisy background."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    background = rng.integers(200, 256, size=(size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    r = size * rng.uniform(0.25, 0.35)
    cx, cy = size / 2 + rng.uniform(-size / 8, size / 8, 2)
    box = [cx - r, cy - r, cx + r, cy + r]
    if kind == "ellipse":
        draw.ellipse(box, fill=colour)
    elif kind == "rectangle":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return image.convert(mode)


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write ``array`` (uint8) as an idx file, gzipped or not."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path
