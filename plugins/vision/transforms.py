"""Images in, model inputs out: decoding to RGB and timm's transforms.

Geometry and normalisation come from the backbone's timm data config
(``resolve_model_data_config``: input size, interpolation, mean/std, crop
percentage), with the recipe's ``backbone.image_size`` / ``crop_pct`` /
``interpolation`` laid over it. Evaluation is timm's deterministic transform
(resize to ``size / crop_pct``, centre crop, normalise). Training adds the
``[data]`` augmentation options: a random resized crop (timm's
``RandomResizedCropAndInterpolation``) or the evaluation geometry, a
horizontal flip and optional colour jitter; ``augment = false`` trains on the
evaluation transform, which lets a frozen backbone's features be cached.
Every image becomes 3-channel RGB first (grey, palette, RGBA, 16-bit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import Field, field_validator

from ft.errors import DataError
from ft.specs import Options

#: data-config keys timm's create_transform understands
TRANSFORM_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")

#: what to do about a bad image while ``data.skip_bad`` is off
BAD_DATA_HINT = ("fix or remove it, or set data.skip_bad = true: every image is then decoded once before "
                 "training and bad ones are skipped and counted in data.json")
#: an image fails while training although ``data.skip_bad`` decoded every image when the data was built
CHANGED_DATA_HINT = ("data.skip_bad = true decoded this file without error when the data was built, so it "
                     "changed during the run: restore it and resume (ft run --resume), or remove it and start "
                     "a new run (the data would differ from the checkpoint's)")


class AugmentOptions(Options):
    """Training augmentation (``[data]``); evaluation never augments."""

    augment: bool = Field(True, description="false: train on the evaluation transform (no randomness, so a "
                                            "frozen backbone's features can be cached)")
    hflip: float = Field(0.5, ge=0, le=1, description="probability of a horizontal flip")
    random_resized_crop: bool = Field(True, description="random resized crop (timm); false: the evaluation "
                                                        "geometry (resize + centre crop)")
    crop_scale: tuple[float, float] = Field((0.08, 1.0), description="random resized crop: area fraction range")
    crop_ratio: tuple[float, float] = Field((0.75, 4 / 3), description="random resized crop: aspect ratio range")
    color_jitter: float = Field(0.0, ge=0, description="brightness/contrast/saturation jitter (timm's "
                                                       "ImageNet default 0.4); 0 = off")

    @field_validator("crop_scale", "crop_ratio")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high:
            raise ValueError(f"expected 0 < low <= high, found {list(value)}")
        return value

    def is_random(self) -> bool:
        """Whether the training transform draws random numbers."""
        return self.augment and (self.random_resized_crop or self.hflip > 0 or self.color_jitter > 0)


def to_rgb(image):
    """A PIL image as 8-bit RGB: grey, palette, alpha and 16-bit modes too."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        top = array.max() if array.size else 0.0
        array = array * (255.0 / top) if top > 255 else array
        image = Image.fromarray(array.clip(0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def load_rgb(path: Path | str, where: str | None = None, hint: str = BAD_DATA_HINT):
    """Decode an image file to RGB; a file PIL cannot decode (a truncated
    JPEG fails only here, when its pixels load) is a DataError naming it
    (``where``) with ``hint``."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            return to_rgb(image)
    except Exception as exc:  # PIL raises many types for damaged files
        raise DataError(f"cannot decode image: {type(exc).__name__}: {exc}", where=where or str(path),
                        hint=hint) from None


def check_image(path: Path) -> str | None:
    """Cheap up-front check (header and structure, no full decode): None if
    the file looks like an image PIL can read, else the reason. Not every
    damage shows here: PIL's ``verify`` reads a JPEG's header only, so a
    truncated JPEG passes (:func:`load_rgb` finds it)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def transform_config(data_config: dict) -> dict:
    return {k: data_config[k] for k in TRANSFORM_KEYS if k in data_config}


def eval_transform(data_config: dict) -> Callable:
    """timm's deterministic evaluation transform for ``data_config``."""
    from timm.data import create_transform

    return create_transform(**transform_config(data_config), is_training=False)


def train_transform(data_config: dict, aug: AugmentOptions) -> Callable:
    """The training transform: the evaluation one without augmentation."""
    from timm.data import create_transform
    from torchvision import transforms

    if not aug.is_random():
        return eval_transform(data_config)
    jitter = aug.color_jitter or None
    if aug.random_resized_crop:
        return create_transform(**transform_config(data_config), is_training=True, scale=tuple(aug.crop_scale),
                                ratio=tuple(aug.crop_ratio), hflip=aug.hflip, color_jitter=jitter)
    # the evaluation geometry, with flips / jitter inserted before the tensor conversion
    steps = list(eval_transform(data_config).transforms)
    at = next((i for i, t in enumerate(steps) if "ToTensor" in type(t).__name__), None)
    if at is None:
        raise RuntimeError(f"unexpected timm eval transform (no ToTensor step): {steps}")
    extra: list[Any] = []
    if aug.hflip > 0:
        extra.append(transforms.RandomHorizontalFlip(aug.hflip))
    if jitter:
        extra.append(transforms.ColorJitter(jitter, jitter, jitter))
    return transforms.Compose(steps[:at] + extra + steps[at:])


def image_transforms(backbone, aug: AugmentOptions) -> tuple[Callable | None, Callable | None, bool]:
    """``(train, eval, train_is_random)`` transforms for ``backbone``.

    A backbone with a timm-style ``data_config`` (the vision plugin's) gets
    timm's transforms with ``aug``; any other backbone's own
    ``preprocess(train)`` is used as it is (the augmentation options then
    do nothing, and the training transform is assumed random unless
    ``augment = false``).
    """
    config = getattr(backbone, "data_config", None)
    if isinstance(config, dict):
        return train_transform(config, aug), eval_transform(config), aug.is_random()
    evaluate = backbone.preprocess(train=False)
    if not aug.augment:
        return evaluate, evaluate, False
    return backbone.preprocess(train=True), evaluate, True


def describe_config(data_config: dict) -> dict:
    """JSON-friendly preprocessing facts (for data.json, the model card, caches)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in transform_config(data_config).items()}
