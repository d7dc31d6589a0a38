"""Helpers for the recommender tests: small synthetic interaction data with
structure a model can learn, written in each supported format, and recipes
over it. (Shared helpers live here, not in a conftest: two conftest modules
would collide on import.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

GENRES = ("Action", "Comedy", "Drama")


def recbole_ml100k() -> Path | None:
    """The MovieLens-100k folder of the installed recbole package (read in place), or None."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
    return folder if (folder / "ml-100k.inter").exists() else None


needs_ml100k = pytest.mark.skipif(recbole_ml100k() is None, reason="recbole (MovieLens-100k assets) not installed")


def synthetic(n_users: int = 36, n_items: int = 30, per_user: int = 10, seed: int = 0) -> list[tuple]:
    """``(user, item, rating, timestamp)`` rows: each user belongs to one of
    three groups and mostly picks items of that group's genre, in a group
    order (so the next item is predictable from the history too)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        group = u % len(GENRES)
        liked = [i for i in range(n_items) if i % len(GENRES) == group]
        start = int(rng.integers(0, 3))
        t0 = 1_000_000 + u * 50 + int(rng.integers(0, 40))
        for j in range(per_user):
            item = liked[(start + j) % len(liked)] if rng.random() < 0.85 else int(rng.integers(0, n_items))
            rows.append((f"u{u}", f"i{item}", float(rng.integers(3, 6)), t0 + 100 * j))
    seen, out = set(), []
    for row in rows:  # one rating per (user, item): keep the first
        if row[:2] not in seen:
            seen.add(row[:2])
            out.append(row)
    return out


def write_csv(path: Path, rows: list[tuple], header=("user", "item", "rating", "timestamp"), sep: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [sep.join(header)] + [sep.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_udata(path: Path, rows: list[tuple]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in rows))
    return path


def write_atomic(folder: Path, rows: list[tuple], name: str = "toy", n_items: int = 30) -> Path:
    """``NAME.inter`` plus ``NAME.item`` (genre, year) and ``NAME.user`` (age, gender)."""
    folder.mkdir(parents=True, exist_ok=True)
    inter = folder / f"{name}.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                     + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    (folder / f"{name}.item").write_text(
        "item_id:token\tclass:token_seq\trelease_year:token\n"
        + "".join(f"i{i}\t{GENRES[i % 3]}{' Comedy' if i % 5 == 0 else ''}\t{1980 + i}\n" for i in range(n_items)))
    users = sorted({r[0] for r in rows}, key=lambda u: int(u[1:]))
    (folder / f"{name}.user").write_text(
        "user_id:token\tage:token\tgender:token\n"
        + "".join(f"{u}\t{20 + int(u[1:]) % 40}\t{'MF'[int(u[1:]) % 3 == 0]}\n" for u in users))
    return inter


def rec_recipe(tmp_path: Path, inter: Path, backbone: dict, **sections) -> dict:
    """A small, fast ranking recipe over an atomic file (leave-last-out split)."""
    recipe = {
        "task": {"type": "ranking"},
        "data": {"format": "recbole_atomic", "path": str(inter), "split": "leave_last_out",
                 "item_features": ["class", "release_year"], "user_features": ["age", "gender"],
                 "feature_bins": {"age": 10, "release_year": 10}},
        "backbone": {"dim": 16, **backbone},
        "head": {"type": "ranking"},
        "freeze": {"strategy": "full"},
        "optim": {"lr": 2e-2, "schedule": "constant", "weight_decay": 0.0},
        "train": {"epochs": 4, "batch_size": 32, "progress": False, "checkpoint": False, "seed": 0},
        "output": {"dir": str(tmp_path / "run")},
    }
    for name, values in sections.items():
        recipe.setdefault(name, {}).update(values)
    return recipe


def train_losses(run_dir: Path) -> list[float]:
    import json

    return [json.loads(line)["train_loss"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
