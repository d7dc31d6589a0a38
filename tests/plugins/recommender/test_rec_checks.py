"""The recommender formats' ``check`` (``ft validate``, the start of ``ft
run``): each data mistake is a DataError naming ``file: line N`` (the
header is line 1) and the fix, before any model exists; the repo's
MovieLens recipes are described; an unclosed quote is caught by check and
build alike; check and build read the file once between them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ft.contracts import BuildContext
from ft.errors import DataError
from ft.plugins.recommender import data as rec_data
from ft.plugins.recommender.data import AtomicOptions, CsvOptions, GroupLensOptions
from ft.plugins.recommender.models import MatrixFactorization, MfOptions

from rec_testkit import needs_ml100k, synthetic, write_atomic

REPO = Path(__file__).resolve().parents[3]
OPTIONS = {"interactions_csv": CsvOptions, "grouplens": GroupLensOptions, "recbole_atomic": AtomicOptions}
#: (user, item, rating, timestamp): 6 users with 5 items each, in time order
ROWS = [(f"u{u}", f"i{(u + j) % 8}", 1 + (u + j) % 5, 1_000_000 + 100 * u + 10 * j) for u in range(6) for j in range(5)]
CSV = "user,item,rating,timestamp\n" + "".join(",".join(map(str, r)) + "\n" for r in ROWS)
UDATA = "".join("\t".join(str(v).lstrip("ui") for v in r) + "\n" for r in ROWS)
ATOMIC = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
          + "".join("\t".join(map(str, r)) + "\n" for r in ROWS))


def check(registry, fmt: str, task: str = "ranking", **options) -> str:
    """The registered ``check`` of ``fmt``, as ``ft validate`` calls it."""
    spec = registry.get("ft_dataset_formats", fmt)
    return spec.check(OPTIONS[fmt](**options), BuildContext(task_type=task, load_pretrained=False))


def lines(text: str, replace: dict[int, str | bytes]) -> bytes:
    """``text`` with file line ``n`` (1-based) replaced by ``replace[n]``."""
    out = [line.encode() for line in text.splitlines()]
    for n, value in replace.items():
        out[n - 1] = value if isinstance(value, bytes) else value.encode()
    return b"\n".join(out) + b"\n"


#: id -> (format, file name, content, options, task, line (None: the file alone), message regex, hint regex)
MISTAKES = {
    "csv-empty": ("interactions_csv", "r.csv", b"", {}, "ranking", None, "the file is empty",
                  "write a header naming the columns \\(user,item,rating,timestamp\\)"),
    "csv-header-only": ("interactions_csv", "r.csv", b"user,item,rating,timestamp\n", {}, "ranking", None,
                        "no interactions \\(the file has no data rows\\)", "data.path"),
    "csv-missing-column": ("interactions_csv", "r.csv", CSV.replace("rating", "score", 1).encode(), {}, "ranking", 1,
                           "column 'rating' \\(data.rating_column\\) is not in the header",
                           "set data.rating_column to one of the columns: user, item, score, timestamp"),
    "csv-misspelt-column": ("interactions_csv", "r.csv", CSV.replace("user", "users", 1).encode(), {}, "ranking",
                            1, "column 'user' \\(data.user_column\\)", "did you mean 'users'\\? Set data.user_column"),
    "csv-unknown-column": ("interactions_csv", "r.csv", CSV.replace("timestamp", "timestamp,note", 1).encode(), {},
                           "ranking", 1, "column 'note': unknown column", "data.ignore_columns"),
    "csv-rating-not-a-number": ("interactions_csv", "r.csv", lines(CSV, {3: "u0,i1,five,1000010"}), {}, "rating", 3,
                                "column 'rating': expected a number, found 'five'", "fix or remove the row"),
    "csv-timestamp-not-a-number": ("interactions_csv", "r.csv", lines(CSV, {4: "u0,i2,4,yesterday"}), {},
                                   "ranking", 4, "column 'timestamp': expected a number, found 'yesterday'",
                                   "fix or remove the row"),
    "csv-empty-id": ("interactions_csv", "r.csv", lines(CSV, {5: ",i3,4,1000030"}), {}, "ranking", 5,
                     "column 'user': empty ID", "fix or remove the row"),
    "csv-ragged": ("interactions_csv", "r.csv", lines(CSV, {5: "u0,i3"}), {}, "ranking", 5,
                   "expected 4 fields \\(user, item, rating, timestamp\\), found 2", "fix the row"),
    "csv-unclosed-quote": ("interactions_csv", "r.csv", lines(CSV, {3: '"u0,i1,3,1000010'}), {}, "ranking", 3,
                           "a quoted field opens here and is not closed on this line", "close the quote"),
    "csv-stray-quote": ("interactions_csv", "r.csv", lines(CSV, {3: '"u0"x,i1,3,1000010'}), {}, "ranking", 3,
                        "a quoted field opens here and is followed by other text", "close the quote"),
    "csv-not-utf8": ("interactions_csv", "r.csv", lines(CSV, {2: b"u\xe9,i0,1,1000000"}), {}, "ranking", 2,
                     "byte 0xe9 is not valid UTF-8", "save the file as UTF-8"),
    "csv-duplicate": ("interactions_csv", "r.csv", (CSV + "u0,i0,4,1000000\n").encode(), {}, "ranking", 32,
                      "duplicate interaction: .* as line 2", "remove the repeated row"),
    "udata-three-fields": ("grouplens", "u.data", lines(UDATA, {3: "0\t2\t3"}), {}, "ranking", 3,
                           "expected 4 tab-separated fields", "interactions_csv"),
    "udata-not-utf8": ("grouplens", "u.data", lines(UDATA, {2: b"0\t1\t3\t10\xff"}), {}, "ranking", 2,
                       "byte 0xff is not valid UTF-8", "UTF-8"),
    "udata-rating-not-a-number": ("grouplens", "u.data", lines(UDATA, {2: "0\t1\tfive\t1000010"}), {}, "rating",
                                  2, "column 'rating': expected a number", "fix or remove the row"),
    "atomic-empty": ("recbole_atomic", "d.inter", b"", {}, "ranking", None, "the file is empty", None),
    "atomic-no-types": ("recbole_atomic", "d.inter", ATOMIC.replace(":token", "").encode(), {}, "ranking", 1,
                        "RecBole headers are name:type", "types: token"),
    "atomic-not-utf8": ("recbole_atomic", "d.inter", lines(ATOMIC, {4: b"u\xe9\ti1\t3\t1000000"}), {}, "ranking",
                        4, "byte 0xe9 is not valid UTF-8", "UTF-8"),
    "atomic-short-row": ("recbole_atomic", "d.inter", lines(ATOMIC, {3: "u0\ti1\t3"}), {}, "ranking", 3,
                         "expected 4 tab-separated fields, found 3", "tab-separated"),
    "atomic-not-inter": ("recbole_atomic", "d.item", ATOMIC.encode(), {}, "ranking", None,
                         "expected a .inter file \\(or a folder holding one\\)", "NAME.inter"),
    "atomic-missing-item-file": ("recbole_atomic", "d.inter", ATOMIC.encode(), {"item_features": ["class"]},
                                 "ranking", None, "data.item_features = \\['class'\\] but there is no d.item",
                                 "add d.item"),
    "by-time-before-every-row": ("interactions_csv", "r.csv", CSV.encode(), {"cutoff": 10}, "ranking", None,
                                 "no training interactions: the by_time split leaves none of the 30",
                                 "data.split and its cutoff"),
    "min-rating-above-every-rating": ("interactions_csv", "r.csv", CSV.encode(),
                                      {"split": "leave_last_out", "min_rating": 9}, "ranking", None,
                                      "none rated at least data.min_rating = 9", "lower data.min_rating"),
    "no-cold-users": ("interactions_csv", "r.csv", CSV.encode(), {"split": "by_user", "cutoff": 2_000_000},
                      "ranking", None, "no cold-start users", "earlier data.cutoff"),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_each_mistake_names_the_file_line_and_fix(registry, tmp_path, case):
    fmt, name, content, options, task, line, message, hint = MISTAKES[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        check(registry, fmt, task, path=path, **options)
    where = f"{path}: line {line}" if line else str(path)
    assert err.value.where == where or (line is None and err.value.where == str(tmp_path)), err.value.where
    assert re.search(message, err.value.message), err.value.message
    assert hint is None or re.search(hint, err.value.hint or ""), err.value.hint
    assert not re.search(r"\brows? \d", str(err.value))  # file lines, said as "line N"


@pytest.mark.parametrize("fmt, name", [("interactions_csv", "r.csv"), ("grouplens", "u.data")])
def test_a_folder_where_a_file_is_expected(registry, tmp_path, fmt, name):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / name).write_text(CSV if fmt == "interactions_csv" else UDATA)
    with pytest.raises(DataError, match="this is a folder; expected") as err:
        check(registry, fmt, path=folder)
    assert err.value.where == str(folder) and "point data.path at" in err.value.hint
    assert fmt != "grouplens" or "u.data (or ratings.dat) in it" in err.value.hint
    assert check(registry, fmt, path=folder / name).startswith("30 interactions (6 users, 8 items)")


def test_atomic_folders(registry, tmp_path):
    inter = write_atomic(tmp_path / "toy", synthetic(n_users=6), n_items=30)
    text = check(registry, "recbole_atomic", path=inter.parent, split="leave_last_out",
                 item_features=["class"], user_features=["gender"])
    assert text.startswith("56 interactions (6 users, 30 items) in toy.inter; leave_last_out split: 44 train / "
                           "6 val / 6 test interactions")
    assert text.endswith("item features: class; user features: gender")
    (tmp_path / "toy" / "other.inter").write_text(ATOMIC)
    with pytest.raises(DataError, match="expected one .inter file in the folder, found 2") as err:
        check(registry, "recbole_atomic", path=inter.parent)
    assert "point data.path at the .inter file" in err.value.hint


def test_unclosed_quote_is_caught_by_check_and_build_at_the_line_it_opens(registry, tmp_path):
    # a quote opened on line 3 runs on to the next quoted field (line 5): never merged into one interaction
    path = tmp_path / "q.csv"
    path.write_bytes(lines(CSV, {3: '"u0,i1,3,1000010', 5: '"u0",i3,4,1000030'}))
    options = CsvOptions(path=path)
    spec = registry.get("ft_dataset_formats", "interactions_csv")
    backbone = MatrixFactorization(MfOptions(dim=8), BuildContext(task_type="ranking"))
    runs = {"check": lambda: spec.check(options, BuildContext(task_type="ranking", load_pretrained=False)),
            "build": lambda: spec.build(options, backbone, BuildContext(task_type="ranking"))}
    for name, run in runs.items():
        with pytest.raises(DataError, match="a quoted field opens here and is not closed on this line") as err:
            run()
        assert err.value.where == f"{path}: line 3", name
    # a quoted field that closes on its own line is fine
    path.write_bytes(lines(CSV, {3: '"u0",i1,3,1000010'}))
    assert check(registry, "interactions_csv", path=path).startswith("30 interactions")


def test_line_numbers_are_file_lines_in_every_format(registry, tmp_path):
    """The same bad rating, with blank lines before it, is named by its file line everywhere."""
    cases = {
        "interactions_csv": ("r.csv", "user,item,rating,timestamp\n\nu0,i0,1,10\n\nu0,i1,bad,20\n", 5),
        "grouplens": ("u.data", "0\t0\t1\t10\n\n0\t1\tbad\t20\n", 3),
        "recbole_atomic": ("d.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\n"
                                      "u0\ti0\t1\t10\nu0\ti1\tbad\t20\n", 4),
    }
    for fmt, (name, content, line) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(DataError) as err:
            check(registry, fmt, "rating", path=path)
        assert err.value.where == f"{path}: line {line}", fmt
        assert err.value.message == "column 'rating': expected a number, found 'bad'", fmt


def test_check_and_build_read_the_file_once(registry, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(CSV)
    options = CsvOptions(path=path, split="leave_last_out")
    assert check(registry, "interactions_csv", path=path, split="leave_last_out") == (
        "30 interactions (6 users, 8 items) in r.csv; leave_last_out split: 18 train / 6 val / 6 test interactions")
    first = rec_data.load("interactions_csv", options)[0]
    spec = registry.get("ft_dataset_formats", "interactions_csv")
    backbone = MatrixFactorization(MfOptions(dim=8), BuildContext(task_type="ranking"))
    bundle = spec.build(options, backbone, BuildContext(task_type="ranking"))
    assert rec_data.load("interactions_csv", options)[0] is first and bundle.info["counts"]["interactions"] == 30


@needs_ml100k
@pytest.mark.parametrize("recipe, split", [("movielens_coldstart", "by_user: 960 train / 3,802 val / 12,286 test"),
                                           ("movielens_pretrain", "by_time: 79,999 train / 0 val / 20,001 test")])
def test_check_on_the_repo_recipes(registry, recipe, split):
    from ft.engine import check_data
    from ft.recipe import load_recipe

    text = check_data(load_recipe(REPO / "recipes" / f"{recipe}.toml", registry=registry), registry)
    name, _, counts = split.partition(": ")
    assert text == (f"100,000 interactions (943 users, 1,682 items) in ml-100k.inter; {name} split: {counts} "
                    f"interactions; item features: class, release_year; user features: age, gender, occupation")


def test_a_byte_order_mark_is_not_part_of_the_first_column(registry, tmp_path):
    for fmt, name, content in (("interactions_csv", "r.csv", CSV), ("recbole_atomic", "d.inter", ATOMIC)):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + content.encode())  # what spreadsheet programs write as "CSV UTF-8"
        assert check(registry, fmt, path=path).startswith("30 interactions (6 users, 8 items)"), fmt
