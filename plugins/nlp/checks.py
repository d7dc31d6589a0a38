"""``check`` of the text formats: the data read as the build reads it, before any model.

``ft validate`` prints what it returns, and ``ft run`` calls it before the
backbone is built, so a data mistake costs seconds, not a model load. It
needs no tokenizer: texts are checked, not tokenized.
"""

from __future__ import annotations

from .data import SAMPLE_OVER_BYTES, SAMPLE_ROWS, TextDataOptions, read_data, split_sizes

MAX_NAMED_CLASSES = 6


def check_text_data(kind: str, options: TextDataOptions, ctx) -> str:
    """Check a text format's data and describe it in one line.

    Checks, with the build's own reader (:func:`.data.read_data`): every
    file (``path`` / ``source``, ``val_path``, ``test_path``) exists and is
    a file; it is text in ``data.encoding`` (an undecodable byte names its
    line); CSV / TSV have a header with the text, pair and label columns
    and at least one data row, and every row parses (quotes closed, as many
    fields as the header); every JSON line is an object with those fields;
    every text is non-empty and every label readable for the task (a class
    name, labels for multilabel, a finite number for regression) and in
    ``data.labels`` unless ``other_labels = "drop"``; a classifier finds two
    classes or more; the table leaves a training set after the validation
    and test splits asked for. With ``skip_bad`` bad rows are counted, not
    fatal, as in the build.

    Files up to 64 MB on disk are read whole (the repo's data sets take a
    second or less); a larger file is checked on its first 20,000 rows, and
    then the class count and split sizes, which need every row, are not.

    Returns e.g. ``"12,714 examples in rotten_tomatoes_corpus_full.csv.bz2
    (1,097 dropped: label outside data.labels, 94 duplicates): 11,214 train /
    500 val / 1,000 test; 2 classes: rotten, fresh"``. Raises
    :class:`ft.DataError` naming ``file: line N`` and the fix.
    """
    task_type = ctx.task_type
    data = read_data(kind, options, task_type, sample=True)
    main = data.main
    n = len(main.texts)
    if data.complete:
        val_n, test_n = split_sizes(n, options, "val" in data.read, "test" in data.read, str(data.main_path))
        val_n = len(data.read["val"].texts) if "val" in data.read else val_n
        test_n = len(data.read["test"].texts) if "test" in data.read else test_n
        train_n = n - (0 if "val" in data.read else val_n) - (0 if "test" in data.read else test_n)
        if options.limit:
            train_n = min(train_n, options.limit)
        sizes = f"{train_n:,} train / {val_n:,} val / {test_n:,} test"
        counted = f"{n:,} examples"
    else:
        sizes = "split sizes not checked"
        counted = f"first {SAMPLE_ROWS:,} rows checked (the file is over {SAMPLE_OVER_BYTES // 2**20} MB)"

    left_out = []
    dropped = sum(count for ex in data.read.values() for count in ex.dropped_labels.values())
    if dropped:
        left_out.append(f"{dropped:,} dropped: label outside data.labels")
    if data.duplicates:
        left_out.append(f"{data.duplicates:,} duplicates")
    skipped = sum(len(ex.skipped) for ex in data.read.values())
    if skipped:
        left_out.append(f"{skipped:,} bad rows skipped")
    where = data.main_path.name + (f" ({', '.join(left_out)})" if left_out else "")

    if task_type == "regression":
        labels = f"regression on column {options.label_column!r}"
    else:
        named = ", ".join(data.names[:MAX_NAMED_CLASSES]) + (", ..." if len(data.names) > MAX_NAMED_CLASSES else "")
        labels = f"{len(data.names)} {'labels' if task_type == 'multilabel' else 'classes'}: {named}"
    return f"{counted} in {where}: {sizes}; {labels}"


def format_checker(kind: str):
    """``check(options, ctx)`` of the format reading ``kind`` tables."""
    def check(options: TextDataOptions, ctx) -> str:
        return check_text_data(kind, options, ctx)

    check.__name__ = f"check_text_{kind}"
    return check
