"""Speech plugin: audio dataset formats and speech backbones (torchaudio).

Registers the dataset formats ``audio_folder`` and ``audio_manifest`` and the
backbones ``whisper`` (Whisper's encoder), ``resemblyzer`` (pretrained
speaker encoder), ``wav2vec2_base``,
``hubert_base``, ``wavlm_base`` (self-supervised encoders) and ``logmel_cnn``
(from scratch). This module only registers; torchaudio (and transformers,
for Whisper) is imported when a backbone is built. See docs/speech.md.

Modules: ``audio`` (reading, resampling, crop/pad, augmentation), ``clips``
(listing, checking and splitting clips), ``data`` (the formats), ``checks``
(their cheap checks for ``ft validate``), ``frontend`` (what speech
backbones share), one module per backbone family.
"""

from __future__ import annotations

from ft.specs import require

require("torchaudio", "speech")
require("soundfile", "speech")

import ft  # noqa: E402
from ft.specs import BackboneSpec, DatasetFormatSpec  # noqa: E402

from .checks import check_folder, check_manifest  # noqa: E402
from .data import FolderOptions, ManifestOptions, build_folder, build_manifest, read_input  # noqa: E402
from .logmel_cnn import LogmelCnnOptions, build_logmel_cnn  # noqa: E402
from .resemblyzer import ResemblyzerOptions, build_resemblyzer  # noqa: E402
from .samples import LOGMEL_SAMPLE, RESEMBLYZER_SAMPLE, audio_folder_sample, audio_manifest_sample  # noqa: E402
from .ssl import FAMILIES, SslOptions, make_builder  # noqa: E402
from .whisper import WhisperOptions, build_whisper  # noqa: E402


@ft.hookimpl
def ft_backbones() -> list[BackboneSpec]:
    specs = [
        BackboneSpec("resemblyzer", build_resemblyzer, ResemblyzerOptions,
                     description="pretrained Resemblyzer speaker encoder (LSTM, 1.4 M params, 16 kHz)",
                     sample_options=RESEMBLYZER_SAMPLE),
        BackboneSpec("whisper", build_whisper, WhisperOptions,
                     description="Whisper encoder (transformers; tiny.en shipped, or a local Hugging Face / "
                                 "CTranslate2 folder), variable-length clips", sample_options={"layer": 1}),
        BackboneSpec("logmel_cnn", build_logmel_cnn, LogmelCnnOptions,
                     description="small log-mel CNN trained from scratch (baseline)", sample_options=LOGMEL_SAMPLE),
    ]
    specs += [BackboneSpec(name, make_builder(name), SslOptions,
                           description=f"torchaudio {name} (local weights file, or a bundle when online)")
              for name in FAMILIES]
    return specs


@ft.hookimpl
def ft_dataset_formats() -> list[DatasetFormatSpec]:
    return [
        DatasetFormatSpec("audio_folder", build_folder, FolderOptions, read_input=read_input, check=check_folder,
                          tasks=("classification",), description="ROOT/<class>/<clip>.{wav,flac,ogg}",
                          sample=audio_folder_sample),
        DatasetFormatSpec("audio_manifest", build_manifest, ManifestOptions, read_input=read_input,
                          check=check_manifest, tasks=("classification",),
                          description="CSV path,label[,speaker][,split]", sample=audio_manifest_sample),
    ]
