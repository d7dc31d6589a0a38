"""Dataset formats ``text_csv``, ``text_tsv``, ``text_jsonl``: labelled texts.

One table (a file, or a packaged data set named by ``data.source``) holds a
text column (and optionally a second text, for pair tasks such as NLI or
paraphrase), and a label column. Validation and test sets come from their
own files or from seeded splits of the table (stratified by class for
classification); the test split is drawn first and depends only on the
table, ``data.seed`` and its size, so it stays fixed whatever the other
options. Texts are tokenized once, with the backbone's own tokenizer, when
the data is built; batches are padded to their longest item by the
backbone's collate, and the training order can be bucketed by length
(:mod:`.batching`).
"""

from __future__ import annotations

import codecs
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch.utils.data import Dataset

from ft.contracts import Backbone, DataBundle, TaskInfo
from ft.errors import DataError
from ft.specs import ExistingPath, Options

from .batching import LengthBuckets
from .labels import Examples, class_names, read_examples, targets
from .tables import SOURCES, check_columns, read_table, resolve_source

#: with ``sample`` (``check``), files larger than this on disk are read only up to SAMPLE_ROWS rows
SAMPLE_OVER_BYTES = 64 * 2**20
SAMPLE_ROWS = 20_000


class TextDataOptions(Options):
    """``[data]`` options of the text formats."""

    path: ExistingPath | None = Field(None, description="the table (.csv / .tsv / .jsonl; gzip, bzip2 or xz "
                                                        "compressed is fine); val/test are split from it unless "
                                                        "val_path / test_path are given")
    source: str | None = Field(None, description="a packaged data set instead of path: "
                                                 + ", ".join(f'"{s}"' for s in SOURCES))
    val_path: ExistingPath | None = Field(None, description="validation table (same columns)")
    test_path: ExistingPath | None = Field(None, description="test table (same columns)")
    text_column: str = "text"
    text_pair_column: str | None = Field(None, description="second text of a pair task (NLI, paraphrase...)")
    label_column: str = "label"
    labels: list[str] | None = Field(None, description="the label set in output order; default: every label "
                                                       "found, sorted")
    other_labels: Literal["error", "drop"] = Field("error", description="a label outside `labels`: an error, "
                                                   "or drop it (the row; for multilabel, that label)")
    label_delimiter: str = Field("|", min_length=1, description="multilabel: separator of labels in one cell")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="validation share of the table (no val_path)")
    val_size: int | None = Field(None, ge=1, description="validation rows; overrides val_fraction")
    test_fraction: float = Field(0.0, ge=0, lt=1, description="test share of the table (no test_path)")
    test_size: int | None = Field(None, ge=1, description="test rows; overrides test_fraction")
    stratify: bool = Field(True, description="classification: splits keep the class proportions")
    seed: int = Field(0, description="seed of the splits and of limit (independent of train.seed)")
    limit: int | None = Field(None, ge=1, description="keep at most N training rows, drawn after the splits "
                                                      "(val and test stay the same); for quick runs")
    drop_duplicates: bool = Field(False, description="drop rows whose text repeats an earlier row's, before "
                                                     "splitting, so no text is in two splits")
    skip_bad: bool = Field(False, description="skip and count bad rows (undecodable bytes, an unclosed quote, "
                                              "a wrong number of fields, not a JSON object, an empty text, an "
                                              "unreadable label) instead of stopping; they are listed in data.json")
    bucket: bool = Field(True, description="training batches of similar length (less padding)")
    bucket_pool: int = Field(50, ge=1, description="batches per pool sorted by length when bucketing")
    pair_separator: str = Field(" ||| ", min_length=1, description="ft predict on pair tasks: \"TEXT"
                                                                   "<separator>PAIR\"")
    encoding: str = Field("utf-8", description="text encoding of the files (\"latin-1\", \"cp1252\"...)")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r} (e.g. \"utf-8\", \"latin-1\")") from None
        return value

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str | None) -> str | None:
        if value is not None:
            resolve_source(value)  # unknown name or package not installed: caught with the recipe
        return value

    @model_validator(mode="after")
    def _one_table(self):
        if (self.path is None) == (self.source is None):
            raise ValueError("give exactly one of path (a file) or source (a packaged data set)")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("labels has duplicates")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        return self


class TextDataset(Dataset):
    """Tokenized examples and their targets: ``(inputs dict, target)`` pairs."""

    def __init__(self, inputs: list[dict[str, torch.Tensor]], targets: torch.Tensor, texts: list[Any]):
        self.inputs, self.targets, self.texts = inputs, targets, texts

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return self.inputs[i], self.targets[i]

    @property
    def lengths(self) -> list[int]:
        """Tokens per example (what bucketing sorts by)."""
        return [len(x["input_ids"]) for x in self.inputs]


# -- splits -----------------------------------------------------------------------


def draw(indices: list[int], size: int, rng: np.random.Generator, strata: list | None = None
         ) -> tuple[list[int], list[int]]:
    """``(taken, rest)``: ``size`` of ``indices`` at random, in proportion to
    ``strata`` (largest remainders; exactly ``size`` in all). Both sorted."""
    shuffled = [indices[i] for i in rng.permutation(len(indices))]
    if strata is None:
        taken = set(shuffled[:size])
    else:
        by_class: dict[Any, list[int]] = defaultdict(list)
        for i in shuffled:
            by_class[strata[i]].append(i)
        share = {c: size * len(v) / len(shuffled) for c, v in by_class.items()}
        quota = {c: int(s) for c, s in share.items()}
        for c in sorted(by_class, key=lambda c: (quota[c] - share[c], str(c)))[: size - sum(quota.values())]:
            quota[c] += 1
        taken = {i for c, v in by_class.items() for i in v[: quota[c]]}
    return sorted(taken), sorted(i for i in indices if i not in taken)


def split_sizes(n: int, options: TextDataOptions, has_val: bool, has_test: bool, where: str) -> tuple[int, int]:
    """``(validation rows, test rows)`` to split off a table of ``n`` rows
    (0 for a split that has its own file); a training set must remain."""
    test = 0 if has_test else (options.test_size or round(options.test_fraction * n))
    val = 0 if has_val else (options.val_size or round(options.val_fraction * n))
    if test + val >= n:
        raise DataError(f"{n} rows cannot give {test} test + {val} validation rows and a training set", where=where,
                        hint="lower data.test_size / data.val_size (or the fractions), or add data")
    return val, test


def _dedupe(examples: Examples) -> tuple[Examples, int]:
    seen: set = set()
    keep = []
    for i, text in enumerate(examples.texts):
        key = tuple(t.strip() for t in text) if isinstance(text, tuple) else text.strip()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    kept = examples.subset(keep)
    kept.dropped_labels, kept.skipped = examples.dropped_labels, examples.skipped
    return kept, len(examples.texts) - len(keep)


# -- the bundle -----------------------------------------------------------------------


@dataclass
class ReadData:
    """The recipe's tables read and checked (what the build splits and tokenizes)."""

    main_path: Path
    read: dict[str, Examples]  # "main" and, if given, "val" / "test"
    main: Examples  # read["main"] without duplicates (with data.drop_duplicates)
    duplicates: int
    names: tuple[str, ...]  # class names (regression: the label column)
    complete: bool  # False when a big file was sampled (``sample=True``)


def read_data(kind: str, options: TextDataOptions, task_type: str, sample: bool = False) -> ReadData:
    """Read the table(s) and check every row, the columns and the labels:
    the build's reading, and ``check``'s. With ``sample``, a file over
    :data:`SAMPLE_OVER_BYTES` is read only up to :data:`SAMPLE_ROWS` rows."""
    main_path = options.path or resolve_source(options.source)
    needed = {"text_column": options.text_column, "label_column": options.label_column}
    if options.text_pair_column:
        needed["text_pair_column"] = options.text_pair_column
    read: dict[str, Examples] = {}
    complete = True
    files = {"main": main_path, "val": options.val_path, "test": options.test_path}
    for name, path in files.items():
        if path is not None:
            big = sample and path.is_file() and path.stat().st_size > SAMPLE_OVER_BYTES
            table = read_table(path, kind, options.encoding, skip_bad=options.skip_bad,
                               max_rows=SAMPLE_ROWS if big else None)
            check_columns(table, needed)
            read[name] = read_examples(table, options, task_type)
            complete = complete and table.complete
            if not read[name].texts:  # every row dropped (other_labels) or skipped (skip_bad)
                gone = {"with a label outside data.labels": sum(read[name].dropped_labels.values()),
                        "skipped as bad": len(read[name].skipped)}
                raise DataError("no examples left: " + ", ".join(f"{n} row(s) {why}" for why, n in gone.items() if n),
                                where=str(path), hint="check data.labels and data.label_column")
    main, duplicates = _dedupe(read["main"]) if options.drop_duplicates else (read["main"], 0)
    names = class_names(options, list(read.values()), task_type)
    # a sample of a sorted file may hold one class only: judge the class count on whole files
    if task_type in ("classification", "multilabel") and len(names) < 2 and not options.labels and complete:
        raise DataError(f"found {len(names)} label(s) in column {options.label_column!r}; a classifier needs at "
                        f"least 2", where=str(main_path),
                        hint="check that data.label_column names the label column (and data.labels, if given)")
    return ReadData(main_path, read, main, duplicates, names, complete)


def build_text_data(kind: str, options: TextDataOptions, backbone: Backbone, ctx) -> DataBundle:
    """Read, check, split and tokenize; see the module docstring."""
    task_type = ctx.task_type
    data = read_data(kind, options, task_type)
    main_path, read, main, duplicates, names = data.main_path, data.read, data.main, data.duplicates, data.names
    skipped = [s for ex in read.values() for s in ex.skipped]
    if skipped:
        print(f"nlp: skipped {len(skipped)} bad row(s) (data.skip_bad; listed in data.json), the first: "
              f"{skipped[0]}", flush=True)
    main_targets = targets(main.labels, names, task_type)

    n = len(main.texts)
    val_n, test_n = split_sizes(n, options, "val" in read, "test" in read, str(main_path))
    strata = main_targets.tolist() if task_type == "classification" and options.stratify else None
    seed = options.seed
    test_idx, rest = draw(list(range(n)), test_n, np.random.default_rng([seed, 1]), strata)
    val_idx, train_idx = draw(rest, val_n, np.random.default_rng([seed, 2]), strata)
    if options.limit and options.limit < len(train_idx):
        train_idx, _ = draw(train_idx, options.limit, np.random.default_rng([seed, 3]), strata)

    splits: dict[str, tuple[Examples, torch.Tensor]] = {"train": (main.subset(train_idx), main_targets[train_idx])}
    for name, idx in (("val", val_idx), ("test", test_idx)):
        if name in read:
            splits[name] = (read[name], targets(read[name].labels, names, task_type))
        elif idx:
            splits[name] = (main.subset(idx), main_targets[idx])

    datasets: dict[str, TextDataset] = {}
    for name, (examples, split_targets) in splits.items():
        tokenize = backbone.preprocess(train=name == "train")
        inputs = [tokenize(text) for text in examples.texts] if tokenize else examples.texts
        datasets[name] = TextDataset(inputs, split_targets, examples.texts)
    train = datasets["train"]

    task = TaskInfo(task_type, len(names), names)
    info = _info(options, main_path, read, names, datasets, duplicates, backbone, task_type)
    batcher = LengthBuckets(tuple(train.lengths), options.bucket_pool) if options.bucket else None
    info["bucketing"] = f"on (pools of {options.bucket_pool} batches)" if batcher else "off"
    return DataBundle(train, datasets.get("val"), datasets.get("test"), task, train_augmented=False,
                      train_eval=train, batcher=batcher, fingerprint=_fingerprint(datasets), info=info)


def _info(options, main_path, read, names, datasets, duplicates, backbone, task_type) -> dict:
    lengths = np.array([n for d in datasets.values() for n in d.lengths])
    max_length = getattr(backbone, "max_length", None)
    dropped: dict[str, int] = {}
    for ex in read.values():
        for label, count in ex.dropped_labels.items():
            dropped[label] = dropped.get(label, 0) + count
    skipped = [s for ex in read.values() for s in ex.skipped]
    info = {
        "classes": list(names) if task_type != "regression" else None,
        "label_map": {n: i for i, n in enumerate(names)} if task_type != "regression" else None,
        "columns": {"text": options.text_column, "pair": options.text_pair_column, "label": options.label_column},
        "files": {k: str(p) for k, p in (("main", main_path), ("val", options.val_path),
                                          ("test", options.test_path)) if p is not None},
        "source": options.source,
        "dropped_other_labels": dropped,
        "dropped_duplicates": duplicates,
        "skipped_bad": len(skipped),
        "skipped_bad_rows": skipped[:50],
        "train_augmented": False,
        "tokens": {"mean": round(float(lengths.mean()), 2), "median": float(np.median(lengths)),
                   "p95": float(np.percentile(lengths, 95)), "p99": float(np.percentile(lengths, 99)),
                   "max": int(lengths.max()), "max_length": max_length,
                   "at_max_length": int((lengths >= max_length).sum()) if max_length else None},
    }
    if task_type == "classification":
        info["counts"] = {split: dict(zip(names, torch.bincount(d.targets, minlength=len(names)).tolist()))
                          for split, d in datasets.items()}
    return info


def _fingerprint(datasets: dict[str, TextDataset]) -> str:
    h = hashlib.sha1()
    for name, d in sorted(datasets.items()):
        h.update(name.encode())
        for text in d.texts:
            h.update(repr(text).encode())
        h.update(d.targets.numpy().tobytes())
    return h.hexdigest()


def read_input(raw: str, options: TextDataOptions, backbone: Backbone):
    """One ``ft predict`` argument (a text; for pair tasks ``TEXT<sep>PAIR``) -> model inputs."""
    example: Any = raw
    if options.text_pair_column:
        if options.pair_separator not in raw:
            raise DataError(f"a pair task needs TEXT{options.pair_separator}PAIR", where=f"input {raw!r}",
                            hint="set data.pair_separator to change the separator")
        first, second = raw.split(options.pair_separator, 1)
        example = (first, second)
    if not all(part.strip() for part in (example if isinstance(example, tuple) else (example,))):
        raise DataError("empty text", where=f"input {raw!r}")
    tokenize = backbone.preprocess(train=False)
    return tokenize(example) if tokenize else example


def format_builder(kind: str):
    """``build(options, backbone, ctx)`` of the format reading ``kind`` tables."""
    def build(options: TextDataOptions, backbone: Backbone, ctx) -> DataBundle:
        return build_text_data(kind, options, backbone, ctx)

    build.__name__ = f"build_text_{kind}"
    return build
