"""Fixtures of the vision tests (helpers live in vision_testkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vision_testkit import SHAPES, draw_shape


@pytest.fixture
def shapes_folder(tmp_path):
    """``make(n_per_class, size, root, grey_every)`` -> an image_folder of 3 shape classes
    (png and jpg; every ``grey_every``-th image saved as grey "L")."""

    def make(n_per_class: int = 6, size: int = 40, root: Path | None = None, grey_every: int = 0) -> Path:
        root = root or tmp_path / "shapes"
        for c, (label, (kind, colour)) in enumerate(SHAPES.items()):
            (root / label).mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                grey = grey_every and i % grey_every == 0
                image = draw_shape(kind, colour, size, seed=100 * c + i, mode="L" if grey else "RGB")
                image.save(root / label / f"{label}_{i:03d}.{'jpg' if i % 2 else 'png'}")
        return root

    return make
