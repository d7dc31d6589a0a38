"""Broken tables: the text formats (text_csv, text_tsv, text_jsonl) and the
recommender formats (interactions_csv, grouplens, recbole_atomic).

Each format has an intact table (``GOOD``; the runner checks it validates)
and damaged copies of it. Line numbers in the words count the file's lines
from 1, the header included.
"""

from __future__ import annotations

import json

from corpus_base import BROKEN, EMPTY, MISSING, Case, line
from corpus_data import Maker, data_case, file_option, with_options

ENCODING = ("utf-8", "utf8", "encoding", "decode")
NOT_A_FILE = ("directory", "folder", "not a file", "is a dir")
NOT_A_NUMBER = ("number", "numeric", "float", "not a")
HEADER_ONLY = EMPTY + ("only a header", "header only", "no data")
NON_FINITE = ("nan", "inf", "finite")

# -- text ------------------------------------------------------------------------------

TEXTS = [("a fine and moving film", "pos"), ("a dull and clumsy film", "neg")] * 6


def text_table(kind: str, rows: list[tuple] = TEXTS, header: tuple = ("text", "label")) -> str:
    if kind == "jsonl":
        return "".join(json.dumps(dict(zip(header, r))) + "\n" for r in rows)
    sep = "\t" if kind == "tsv" else ","
    return "".join(sep.join(map(str, r)) + "\n" for r in [header, *rows])


def text_lines(kind: str, bad: dict[int, str | bytes], rows: list[tuple] = TEXTS) -> bytes:
    """The intact table with file line ``n`` replaced by ``bad[n]``."""
    lines = [s.encode() for s in text_table(kind, rows).splitlines()]
    for n, value in bad.items():
        lines[n - 1] = value if isinstance(value, bytes) else value.encode()
    return b"\n".join(lines) + b"\n"


def text(kind: str, content: str | bytes | None, **options) -> Maker:
    return with_options(file_option(f"table.{kind}", content), **options)


NUMBERS = [(t, str(1.5 + i)) for i, (t, _) in enumerate(TEXTS)]
CSV, TSV, JSONL = "text_csv", "text_tsv", "text_jsonl"

TEXT_CASES: list[Case] = [
    data_case(CSV, "missing-file", text("csv", None), ("data.path", "table.csv", MISSING)),
    data_case(CSV, "folder-for-file", file_option("table.csv/", None), ("table.csv", NOT_A_FILE)),
    data_case(CSV, "empty-file", text("csv", ""), ("table.csv", EMPTY)),
    data_case(CSV, "header-only", text("csv", "text,label\n"), ("table.csv", HEADER_ONLY)),
    data_case(CSV, "missing-text-column", text("csv", text_table("csv"), text_column="review"),
              ("table.csv", "review")),
    data_case(CSV, "missing-label-column", text("csv", text_table("csv"), label_column="sentiment"),
              ("table.csv", "sentiment")),
    data_case(CSV, "unclosed-quote", text("csv", text_lines("csv", {4: '"an open quote, and on,pos'})),
              ("table.csv", line(4))),
    data_case(CSV, "non-utf8", text("csv", text_lines("csv", {3: b"caf\xe9 cr\xe8me,pos"})), ("table.csv", ENCODING)),
    data_case(CSV, "ragged-row", text("csv", text_lines("csv", {3: "a film,pos,extra"})), ("table.csv", line(3))),
    data_case(CSV, "empty-text", text("csv", text_lines("csv", {3: ",pos"})), ("table.csv", line(3))),
    data_case(CSV, "regression-label-not-a-number",
              text("csv", text_lines("csv", {3: "a film,great"}, NUMBERS)),
              ("table.csv", line(3), NOT_A_NUMBER + ("great",)), task="regression"),
    data_case(CSV, "regression-label-nan", text("csv", text_lines("csv", {3: "a film,nan"}, NUMBERS)),
              ("table.csv", line(3), NON_FINITE), task="regression"),
    data_case(CSV, "missing-val-path", with_options(text("csv", text_table("csv")), val_path="val.csv"),
              ("data.val_path", "val.csv")),
    data_case(CSV, "unclosed-quote", text("csv", text_lines("csv", {4: '"an open quote, and on,pos'})),
              ("table.csv", line(4)), run=True),
    data_case(CSV, "header-only", text("csv", "text,label\n"), ("table.csv", HEADER_ONLY), run=True),

    data_case(TSV, "missing-file", text("tsv", None), ("data.path", "table.tsv", MISSING)),
    data_case(TSV, "empty-file", text("tsv", ""), ("table.tsv", EMPTY)),
    data_case(TSV, "header-only", text("tsv", "text\tlabel\n"), ("table.tsv", HEADER_ONLY)),
    data_case(TSV, "missing-label-column", text("tsv", text_table("tsv"), label_column="sentiment"),
              ("table.tsv", "sentiment")),
    data_case(TSV, "commas-not-tabs", text("tsv", text_table("csv")), ("table.tsv", ("text", "label", "column"))),
    data_case(TSV, "ragged-row", text("tsv", text_lines("tsv", {3: "no tab on this line"})), ("table.tsv", line(3))),
    data_case(TSV, "non-utf8", text("tsv", text_lines("tsv", {2: b"na\xefve\tpos"})), ("table.tsv", ENCODING)),
    data_case(TSV, "missing-label-column", text("tsv", text_table("tsv"), label_column="sentiment"),
              ("table.tsv", "sentiment"), run=True),

    data_case(JSONL, "missing-file", text("jsonl", None), ("data.path", "table.jsonl", MISSING)),
    data_case(JSONL, "folder-for-file", file_option("table.jsonl/", None), ("table.jsonl", NOT_A_FILE)),
    data_case(JSONL, "empty-file", text("jsonl", ""), ("table.jsonl", EMPTY)),
    data_case(JSONL, "line-not-an-object", text("jsonl", text_lines("jsonl", {2: '["a film", "pos"]'})),
              ("table.jsonl", ("line 2", "row 2"), "object")),
    data_case(JSONL, "invalid-json", text("jsonl", text_lines("jsonl", {3: '{"text": "a film", "label": '})),
              ("table.jsonl", ("line 3", "row 3"), "json")),
    data_case(JSONL, "missing-label-key", text("jsonl", text_lines("jsonl", {2: '{"text": "a film"}'})),
              ("table.jsonl", ("line 2", "row 2"), "label")),
    data_case(JSONL, "non-utf8", text("jsonl", text_lines("jsonl", {2: b'{"text": "caf\xe9", "label": "pos"}'})),
              ("table.jsonl", ENCODING)),
    data_case(JSONL, "regression-label-not-a-number",
              text("jsonl", text_lines("jsonl", {2: '{"text": "a film", "label": "great"}'}, NUMBERS)),
              ("table.jsonl", ("line 2", "row 2"), NOT_A_NUMBER + ("great",)), task="regression"),
    data_case(JSONL, "line-not-an-object", text("jsonl", text_lines("jsonl", {2: '["a film", "pos"]'})),
              ("table.jsonl", ("line 2", "row 2"), "object"), run=True),
]

# -- recommender -------------------------------------------------------------------------

#: (user, item, rating, timestamp): 8 users with 5 items each, in time order
INTERACTIONS = [(f"u{u}", f"i{(u + j) % 10}", 1 + (u + j) % 5, 1_000_000 + 100 * u + 10 * j)
                for u in range(8) for j in range(5)]


def inter_csv(bad: dict[int, str | bytes] | None = None, header: str = "user,item,rating,timestamp") -> bytes:
    lines = [header.encode()] + [",".join(map(str, r)).encode() for r in INTERACTIONS]
    for n, value in (bad or {}).items():
        lines[n - 1] = value if isinstance(value, bytes) else value.encode()
    return b"\n".join(lines) + b"\n"


def u_data(bad: dict[int, str | bytes] | None = None) -> bytes:
    """GroupLens u.data: tab-separated, no header (line n = interaction n)."""
    lines = ["\t".join(str(v).lstrip("ui") for v in r).encode() for r in INTERACTIONS]
    for n, value in (bad or {}).items():
        lines[n - 1] = value if isinstance(value, bytes) else value.encode()
    return b"\n".join(lines) + b"\n"


ATOMIC_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def atomic(bad: dict[int, str | bytes] | None = None, header: str = ATOMIC_HEADER) -> bytes:
    lines = [header.encode()] + ["\t".join(map(str, r)).encode() for r in INTERACTIONS]
    for n, value in (bad or {}).items():
        lines[n - 1] = value if isinstance(value, bytes) else value.encode()
    return b"\n".join(lines) + b"\n"


def inter(content: bytes | str | None, name: str = "inter.csv", **options) -> Maker:
    return with_options(file_option(name, content), **options)


def atomic_folder(files: dict[str, bytes]) -> Maker:
    """``data.path`` = a folder holding ``files``."""
    def make(ws) -> dict:
        ws.names["file"] = "toy"
        ws.path("toy").mkdir()
        for name, content in files.items():
            ws.write(f"toy/{name}", content)
        return {"path": str(ws.path("toy"))}

    return make


IC, GL, RA = "interactions_csv", "grouplens", "recbole_atomic"

REC_CASES: list[Case] = [
    data_case(IC, "missing-file", inter(None), ("data.path", "inter.csv", MISSING)),
    data_case(IC, "folder-for-file", file_option("inter.csv/", None), ("inter.csv", NOT_A_FILE)),
    data_case(IC, "empty-file", inter(""), ("inter.csv", EMPTY)),
    data_case(IC, "header-only", inter("user,item,rating,timestamp\n"), ("inter.csv", HEADER_ONLY)),
    data_case(IC, "missing-rating-column", inter(inter_csv(header="user,item,score,timestamp")),
              ("inter.csv", "rating")),
    data_case(IC, "rating-not-a-number", inter(inter_csv({3: "u0,i2,five,1000020"})),
              ("inter.csv", line(3), NOT_A_NUMBER + ("five",)), task="rating"),
    data_case(IC, "rating-inf", inter(inter_csv({3: "u0,i2,inf,1000020"})), ("inter.csv", line(3), NON_FINITE),
              task="rating"),
    data_case(IC, "timestamp-not-a-number", inter(inter_csv({4: "u0,i3,4,yesterday"})),
              ("inter.csv", line(4), NOT_A_NUMBER + ("yesterday",))),
    data_case(IC, "unclosed-quote", inter(inter_csv({3: '"u0,i2,3,1000020'})), ("inter.csv", line(3))),
    data_case(IC, "ragged-row", inter(inter_csv({5: "u0,i4"})), ("inter.csv", line(5))),
    data_case(IC, "non-utf8", inter(inter_csv({2: b"us\xe9r,i1,3,1000000"})), ("inter.csv", ENCODING)),
    data_case(IC, "rating-not-a-number", inter(inter_csv({3: "u0,i2,five,1000020"})),
              ("inter.csv", line(3), NOT_A_NUMBER + ("five",)), task="rating", run=True),

    data_case(GL, "missing-file", inter(None, "u.data"), ("data.path", "u.data", MISSING)),
    data_case(GL, "folder-for-file", file_option("u.data/", None), ("u.data", NOT_A_FILE)),
    data_case(GL, "empty-file", inter("", "u.data"), ("u.data", EMPTY)),
    data_case(GL, "rating-not-a-number", inter(u_data({2: "0\t1\tfive\t1000010"}), "u.data"),
              ("u.data", ("line 2", "row 2"), NOT_A_NUMBER + ("five",)), task="rating"),
    data_case(GL, "three-fields", inter(u_data({3: "0\t2\t3"}), "u.data"), ("u.data", ("line 3", "row 3"))),
    data_case(GL, "non-utf8", inter(u_data({2: b"0\t1\t3\t10\xff"}), "u.data"), ("u.data", ENCODING + BROKEN)),
    data_case(GL, "empty-file", inter("", "u.data"), ("u.data", EMPTY), run=True),

    data_case(RA, "missing-path", inter(None, "toy.inter"), ("data.path", "toy.inter", MISSING)),
    data_case(RA, "folder-without-inter", atomic_folder({"toy.item": b"item_id:token\n"}), ("toy", ".inter")),
    data_case(RA, "folder-with-two-inter", atomic_folder({"a.inter": atomic(), "b.inter": atomic()}),
              ("toy", ".inter")),
    data_case(RA, "empty-file", inter("", "toy.inter"), ("toy.inter", EMPTY)),
    data_case(RA, "header-only", inter(ATOMIC_HEADER + "\n", "toy.inter"), ("toy.inter", HEADER_ONLY)),
    data_case(RA, "header-without-types", inter(atomic(header="user_id\titem_id\trating\ttimestamp"), "toy.inter"),
              ("toy.inter", ("name:type", "type"))),
    data_case(RA, "unknown-field-type", inter(atomic(header=ATOMIC_HEADER.replace(":token", ":tokn", 1)),
                                              "toy.inter"), ("toy.inter", "tokn")),
    data_case(RA, "missing-rating-column",
              inter(atomic(header="user_id:token\titem_id:token\tscore:float\ttimestamp:float"), "toy.inter"),
              ("toy.inter", "rating")),
    data_case(RA, "rating-not-a-number", inter(atomic({3: "u0\ti2\tfive\t1000020"}), "toy.inter"),
              ("toy.inter", line(3), NOT_A_NUMBER + ("five",)), task="rating"),
    data_case(RA, "item-features-without-item-file", inter(atomic(), "toy.inter", item_features=["class"]),
              ("item_features", "toy.item")),
    data_case(RA, "non-utf8", inter(atomic({2: b"u\xe9\ti1\t3\t1000000"}), "toy.inter"), ("toy.inter", ENCODING)),
    data_case(RA, "header-without-types", inter(atomic(header="user_id\titem_id\trating\ttimestamp"), "toy.inter"),
              ("toy.inter", ("name:type", "type")), run=True),
]

CASES = TEXT_CASES + REC_CASES

#: intact data per format: the runner checks each validates, so a damaged copy fails for its damage alone
GOOD: dict[str, Maker] = {
    CSV: text("csv", text_table("csv")),
    TSV: text("tsv", text_table("tsv")),
    JSONL: text("jsonl", text_table("jsonl")),
    IC: inter(inter_csv()),
    GL: inter(u_data(), "u.data"),
    RA: inter(atomic(), "toy.inter"),
}
