"""``check`` of the recommender formats: the data read and split as the build does, before any model.

``ft validate`` prints what it returns, and ``ft run`` calls it before the
backbone is built. The check reads through :func:`.data.load`, whose cache
the build then reuses, so ``ft run`` still reads the file once.
"""

from __future__ import annotations

from .data import RecDataOptions, data_path, load, read, training_rows

#: files larger than this on disk are checked on their first SAMPLE_ROWS interactions only
SAMPLE_OVER_BYTES = 64 * 2**20
SAMPLE_ROWS = 100_000


def check_interactions(fmt: str, o: RecDataOptions, ctx) -> str:
    """Check a recommender format's data and describe it in one line.

    Checks, with the build's own readers and split: the file exists and is
    a file (for ``recbole_atomic``: a ``.inter`` file, or a folder or
    packaged data set holding one), UTF-8 text with a
    header naming the user, item, rating and timestamp columns (no unknown
    columns in a CSV; ``name:type`` fields in RecBole files) and at least
    one data row; every row has the header's number of fields, no unclosed
    quote, non-empty IDs and numeric ratings and timestamps; no (user,
    item, timestamp) repeats; side-feature files and columns exist; the
    split asked for (``data.split``, cutoff, k) leaves training interactions
    (rated at least ``min_rating`` for ranking). Errors name ``file: line N``.

    Files up to 64 MB on disk are read whole (MovieLens-100k: about a
    second, reused by the build); a larger file is checked on its first
    100,000 interactions, and then the split is not.

    Returns e.g. ``"100,000 interactions (943 users, 1,682 items) in
    ml-100k.inter; by_user split: 3,140 train / 4,785 val / 14,440 test
    interactions; item features: class, release_year"``.
    """
    path = data_path(fmt, o)
    if path.is_file() and path.stat().st_size > SAMPLE_OVER_BYTES:
        data = read(fmt, o, max_rows=SAMPLE_ROWS)
        return (f"first {len(data):,} interactions of {path.name} checked (the file is over "
                f"{SAMPLE_OVER_BYTES // 2**20} MB; the split is not checked)")
    data, sp = load(fmt, o)
    rows, _ = training_rows(data, sp, o, ctx.task_type == "ranking")
    users, items = len(set(data.users.tolist())), len(set(data.items.tolist()) | set(data.catalogue))
    text = (f"{len(data):,} interactions ({users:,} users, {items:,} items) in {path.name}; {o.split} split: "
            f"{len(rows):,} train / {len(sp.val):,} val / {len(sp.test):,} test interactions")
    features = [f"{kind} features: {', '.join(table)}" for kind, table in
                (("item", data.item_features), ("user", data.user_features)) if table]
    return "; ".join([text, *features])


def format_checker(fmt: str):
    """``check(options, ctx)`` of the format ``fmt``."""
    def check(options: RecDataOptions, ctx) -> str:
        return check_interactions(fmt, options, ctx)

    check.__name__ = f"check_{fmt}"
    return check
