"""Readers of the three formats, and bad data named by "file: line N" and column."""

from __future__ import annotations

import pytest

from ft.errors import DataError
from ft.plugins.recommender import readers

from rec_testkit import synthetic, write_atomic, write_csv, write_udata


def test_csv_reads_configured_columns(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("a", "x", 4, 10), ("b", "y", 2.5, 11)],
                     header=("uid", "iid", "stars", "when"))
    data = readers.read_csv(path, user="uid", item="iid", rating="stars", timestamp="when")
    assert data.users.tolist() == ["a", "b"] and data.items.tolist() == ["x", "y"]
    assert data.ratings.tolist() == [4.0, 2.5] and data.times.tolist() == [10.0, 11.0]
    assert data.lines.tolist() == [2, 3]


def test_csv_without_timestamps(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("a", "x", 4), ("a", "y", 3)], header=("user", "item", "rating"))
    data = readers.read_csv(path, user="user", item="item", rating="rating", timestamp=None)
    assert data.times is None and len(data) == 2


def test_grouplens_udata(tmp_path):
    rows = synthetic(n_users=3, per_user=4)
    data = readers.read_grouplens(write_udata(tmp_path / "u.data", rows))
    assert len(data) == len(rows)
    assert data.users[0] == rows[0][0] and data.times[0] == rows[0][3]


def test_recbole_atomic_with_side_features(tmp_path):
    inter = write_atomic(tmp_path / "toy", synthetic(n_users=6), n_items=30)
    data = readers.read_recbole(inter, user="user_id", item="item_id", rating="rating", timestamp="timestamp",
                                item_features=["class", "release_year"], user_features=["gender"],
                                bins={"release_year": 10})
    assert data.item_features["class"]["i5"] == ["Drama", "Comedy"]  # token_seq: space-separated tokens
    assert data.item_features["class"]["i1"] == ["Comedy"]
    assert data.item_features["release_year"]["i13"] == ["1990"]  # 1993 binned to the decade
    assert data.user_features["gender"]["u3"] == ["F"] and data.user_features["gender"]["u4"] == ["M"]
    assert len(data.catalogue) == 30  # every item of the .item file, with or without interactions


def test_csv_unknown_column_names_file_line_and_column(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("a", "x", 4, 1, "hi")], header=("user", "item", "rating", "timestamp", "note"))
    with pytest.raises(DataError) as err:
        readers.read_csv(path, user="user", item="item", rating="rating", timestamp="timestamp")
    text = str(err.value)
    assert f"{path}: line 1" in text and "'note'" in text and "unknown column" in text
    readers.read_csv(path, user="user", item="item", rating="rating", timestamp="timestamp", ignore=("note",))


def test_csv_missing_configured_column_suggests_the_near_one(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("a", "x", 4, 1)], header=("userid", "item", "rating", "timestamp"))
    with pytest.raises(DataError) as err:
        readers.read_csv(path, user="user_id", item="item", rating="rating", timestamp="timestamp", ignore=("userid",))
    assert "'user_id'" in str(err.value) and "data.user_column" in str(err.value) and "userid" in str(err.value)


@pytest.mark.parametrize("fmt", ["csv", "udata", "atomic"])
def test_non_numeric_rating_names_file_line_and_column(tmp_path, fmt):
    rows = [("a", "x", 4, 10), ("a", "y", "five", 11), ("b", "x", 3, 12)]
    if fmt == "csv":
        path = write_csv(tmp_path / "r.csv", rows)
        read = lambda: readers.read_csv(path, user="user", item="item", rating="rating", timestamp="timestamp")  # noqa: E731
        line, column = 3, "'rating'"
    elif fmt == "udata":
        path = tmp_path / "u.data"
        path.write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
        read = lambda: readers.read_grouplens(path)  # noqa: E731
        line, column = 2, "'rating'"
    else:
        path = tmp_path / "d.inter"
        path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                        + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
        read = lambda: readers.read_recbole(path, user="user_id", item="item_id", rating="rating",  # noqa: E731
                                            timestamp="timestamp", item_features=[], user_features=[], bins={})
        line, column = 3, "'rating'"
    with pytest.raises(DataError) as err:
        read()
    text = str(err.value)
    assert f"{path}: line {line}" in text and column in text and "'five'" in text


def test_duplicate_user_item_time_rows_name_both_lines(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("a", "x", 4, 10), ("b", "x", 4, 10), ("a", "x", 5, 10)])
    with pytest.raises(DataError) as err:
        readers.read_csv(path, user="user", item="item", rating="rating", timestamp="timestamp")
    text = str(err.value)
    assert f"{path}: line 4" in text and "as line 2" in text and "user, item, timestamp" in text
    # the same pair at another time is a re-rating, not a duplicate
    path = write_csv(tmp_path / "ok.csv", [("a", "x", 4, 10), ("a", "x", 5, 11)])
    assert len(readers.read_csv(path, user="user", item="item", rating="rating", timestamp="timestamp")) == 2


def test_atomic_unknown_field_type_and_short_row(tmp_path):
    path = tmp_path / "d.inter"
    path.write_text("user_id:token\titem_id:tokn\trating:float\n1\t2\t3\n")
    with pytest.raises(DataError) as err:
        readers.read_recbole(path, user="user_id", item="item_id", rating="rating", timestamp=None,
                             item_features=[], user_features=[], bins={})
    assert f"{path}: line 1" in str(err.value) and "'item_id'" in str(err.value)
    assert "'tokn'" in str(err.value) and "token" in str(err.value)
    path.write_text("user_id:token\titem_id:token\trating:float\n1\t2\t3\n4\t5\n")
    with pytest.raises(DataError, match=r"d.inter: line 3: expected 3"):
        readers.read_recbole(path, user="user_id", item="item_id", rating="rating", timestamp=None,
                             item_features=[], user_features=[], bins={})


def test_atomic_missing_side_feature_column(tmp_path):
    inter = write_atomic(tmp_path / "toy", synthetic(n_users=3))
    with pytest.raises(DataError) as err:
        readers.read_recbole(inter, user="user_id", item="item_id", rating="rating", timestamp="timestamp",
                             item_features=["genre"], user_features=[], bins={})
    assert "toy.item" in str(err.value) and "'genre'" in str(err.value) and "data.item_features" in str(err.value)


def test_bad_data_fails_before_training(tmp_path, registry):
    import ft

    from rec_testkit import rec_recipe

    path = write_csv(tmp_path / "r.csv", [("a", "x", 4, 10), ("a", "y", "bad", 11), ("a", "z", 3, 12)])
    recipe = rec_recipe(tmp_path, path, {"name": "mf"}, data={"format": "interactions_csv", "path": str(path)})
    recipe["data"] = {"format": "interactions_csv", "path": str(path), "split": "leave_last_out"}
    with pytest.raises(DataError, match="r.csv: line 3: column 'rating'"):
        ft.run(recipe, quiet=True)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
