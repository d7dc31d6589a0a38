"""Tiny sample data sets of the recommender formats, for the conformance kit
(:mod:`ft.testing`): 24 users in 3 taste groups over 18 items, 8
interactions each, with ratings and timestamps. Each function writes under
``folder`` and returns the ``[data]`` options (without ``format``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

USERS, ITEMS, PER_USER = 24, 18, 8
#: small embedding tables
MF_SAMPLE = {"dim": 8}
TWO_TOWER_SAMPLE = {"dim": 8, "hidden": 16, "history": 5}
SASREC_SAMPLE = {"dim": 8, "max_history": 6, "layers": 1, "heads": 1}


def _rows() -> list[tuple[str, str, int, int]]:
    """``(user, item, rating, timestamp)``: users mostly pick their group's items."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(USERS):
        liked = [i for i in range(ITEMS) if i % 3 == u % 3]
        picks = list(rng.permutation(liked))[:PER_USER - 2] + list(rng.choice(ITEMS, 2, replace=False))
        seen = set()
        for j, item in enumerate(picks):
            if item not in seen:
                seen.add(item)
                rows.append((f"u{u}", f"i{item}", int(rng.integers(3, 6)), 1_000_000 + u * 10 + 1000 * j))
    return rows


def _root(folder: Path) -> Path:
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def interactions_csv_sample(folder: Path) -> dict:
    """``user,item,rating,timestamp`` with a header."""
    path = _root(folder) / "interactions.csv"
    path.write_text("user,item,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in _rows()))
    return {"path": str(path)}


def grouplens_sample(folder: Path) -> dict:
    """GroupLens ``u.data``: tab-separated, no header."""
    path = _root(folder) / "u.data"
    path.write_text("".join(f"{u[1:]}\t{i[1:]}\t{r}\t{t}\n" for u, i, r, t in _rows()))
    return {"path": str(path)}


def recbole_atomic_sample(folder: Path) -> dict:
    """RecBole atomic ``sample.inter``."""
    path = _root(folder) / "sample.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                    + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in _rows()))
    return {"path": str(path)}


SAMPLES = {"interactions_csv": interactions_csv_sample, "grouplens": grouplens_sample,
           "recbole_atomic": recbole_atomic_sample}
