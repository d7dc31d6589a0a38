"""Recommender dataset formats: options, ID vocabularies, datasets, the bundle.

Vocabularies (saved in the run's ``data.json`` as ``vocab``): the item
vocabulary is the catalogue (every item in the interaction file and the item
file), because ranking is over the full catalogue; the user vocabulary is the
users with a training interaction. Index 0 of both is padding / unknown.

Examples. Ranking training: one per training interaction (rated at least
``min_rating``): inputs ``{"user", "history"}`` (the user's earlier training
items, left-padded to the backbone's ``max_history``; left out when it is
0), target the item index. Ranking evaluation: one per user with a relevant
held-out item: the same inputs with the history of all known interactions,
and a bool target ``[2, n_items]``: plane 0 marks relevant items, plane 1
the user's known (training) items, which are excluded from the ranking.
Rating tasks: one example per interaction with ``"item"`` in the inputs and
the rating as target.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import Dataset

from ft.contracts import DataBundle, TaskInfo
from ft.errors import DataError
from ft.specs import ExistingPath, Options

from . import readers, splits
from .readers import Interactions

PAD = "<pad>"


class RecDataOptions(Options):
    """Options every recommender format shares: the split and relevance."""

    split: Literal["by_time", "by_user", "leave_last_out"] = "by_time"
    cutoff: float = Field(0.8, gt=0, description="by_time/by_user: a quantile in (0, 1) or a timestamp")
    val_cutoff: float | None = Field(None, gt=0, description="by_time: validation period [val_cutoff, cutoff)")
    k: int = Field(5, ge=1, description="by_user: training interactions per cold-start user (the first k)")
    val_users: float = Field(0.0, ge=0, lt=1, description="by_user: fraction of cold users held out for validation")
    include_warm: bool = Field(False, description="by_user: also train on every interaction before the cutoff")
    validation: bool = Field(True, description="leave_last_out: hold out each user's second-to-last item")
    min_rating: float | None = Field(None, description="ranking: ratings below this neither train nor count as "
                                                       "relevant (default: every interaction is a positive)")
    seed: int = Field(0, description="seed of the validation-user draw")


class CsvOptions(RecDataOptions):
    """``interactions_csv``: a CSV with a header."""

    path: ExistingPath
    user_column: str = "user"
    item_column: str = "item"
    rating_column: str = "rating"
    timestamp_column: str = Field("timestamp", description="\"\" if the file has no timestamps")
    delimiter: str = Field(",", min_length=1, max_length=1, description="one character, e.g. \"\\t\"")
    ignore_columns: list[str] = Field(default_factory=list, description="extra columns to skip")


class GroupLensOptions(RecDataOptions):
    """``grouplens``: ``u.data`` (or ``ratings.dat``)."""

    path: ExistingPath


class AtomicOptions(RecDataOptions):
    """``recbole_atomic``: ``NAME.inter`` with optional ``NAME.item``/``NAME.user``."""

    path: ExistingPath | None = Field(None, description="a .inter file or the folder holding one")
    source: str = Field("recbole:ml-100k", description="used when path is not given: an example dataset of "
                                                       "the installed recbole package")
    user_column: str = "user_id"
    item_column: str = "item_id"
    rating_column: str = "rating"
    timestamp_column: str = "timestamp"
    item_features: list[str] = Field(default_factory=list, description="columns of NAME.item, e.g. class")
    user_features: list[str] = Field(default_factory=list, description="columns of NAME.user, e.g. gender")
    feature_bins: dict[str, float] = Field(default_factory=dict, description="numeric feature -> bin width")


# -- reading (cached: ft eval / predict re-read the same data) --------------------------

_CACHE: dict[str, tuple[Interactions, splits.Split]] = {}


def data_path(fmt: str, o: RecDataOptions) -> Path:
    """The interaction file a recipe's ``[data]`` names (for recbole_atomic:
    the ``.inter`` file of ``path`` or of the folder ``path`` / ``source``)."""
    if fmt != "recbole_atomic":
        return o.path
    if o.path is None:
        folder = readers.recbole_folder(o.source)
        return folder / f"{folder.name}.inter"
    if o.path.is_dir():
        found = sorted(o.path.glob("*.inter"))
        if len(found) != 1:
            raise DataError(f"expected one .inter file in the folder, found {len(found)}", where=str(o.path),
                            hint="point data.path at the .inter file")
        return found[0]
    if o.path.suffix != ".inter":
        raise DataError(f"expected a .inter file (or a folder holding one), not a {o.path.suffix or 'suffixless'} "
                        f"file", where=str(o.path), hint="point data.path at NAME.inter or at its folder")
    return o.path


def read(fmt: str, o: RecDataOptions, max_rows: int | None = None) -> Interactions:
    """The interactions of a recipe's ``[data]`` section (the first ``max_rows`` only, if given)."""
    path = data_path(fmt, o)
    if fmt == "interactions_csv":
        return readers.read_csv(path, user=o.user_column, item=o.item_column, rating=o.rating_column,
                                timestamp=o.timestamp_column or None, delimiter=o.delimiter,
                                ignore=tuple(o.ignore_columns), max_rows=max_rows)
    if fmt == "grouplens":
        return readers.read_grouplens(path, max_rows=max_rows)
    return readers.read_recbole(path, user=o.user_column, item=o.item_column, rating=o.rating_column,
                                timestamp=o.timestamp_column or None, item_features=o.item_features,
                                user_features=o.user_features, bins=o.feature_bins, max_rows=max_rows)


def split(data: Interactions, o: RecDataOptions) -> splits.Split:
    """The split a recipe's options describe."""
    if o.split == "by_time":
        return splits.by_time(data, o.cutoff, o.val_cutoff)
    if o.split == "by_user":
        return splits.by_user(data, o.cutoff, o.k, o.val_users, o.seed, o.include_warm)
    return splits.leave_last_out(data, o.validation)


def load(fmt: str, o: RecDataOptions) -> tuple[Interactions, splits.Split]:
    """Read and split, once per process for the same options and file (so
    ``check`` at the start of ``ft run`` and the build read the data once)."""
    path = data_path(fmt, o)
    stat = path.stat() if path.is_file() else None  # a folder or missing file: read() says so
    key = json.dumps([fmt, o.model_dump(mode="json"), str(path), stat and stat.st_size, stat and stat.st_mtime_ns],
                     sort_keys=True)
    if key not in _CACHE:
        data = read(fmt, o)
        sp = split(data, o)
        _CACHE.clear()  # keep one dataset in memory
        _CACHE[key] = (data, sp)
    return _CACHE[key]


def training_rows(data: Interactions, sp: splits.Split, o: RecDataOptions, ranking: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(training rows, positive mask)``: the split's training interactions
    (for ranking, those rated at least ``min_rating``); none is an error."""
    positive = np.ones(len(data), dtype=bool) if o.min_rating is None else data.ratings >= o.min_rating
    rows = np.sort(sp.train[positive[sp.train]] if ranking else sp.train)
    if len(rows) == 0:
        why = (f"{len(sp.train)} in the {o.split} split, none rated at least data.min_rating = {o.min_rating:g}"
               if len(sp.train) and ranking else f"the {o.split} split leaves none of the {len(data):,}")
        raise DataError(f"no training interactions: {why}", where=data.source,
                        hint="check data.split and its cutoff / k, or lower data.min_rating")
    return rows, positive


# -- vocabularies and datasets ------------------------------------------------------


def natural_key(token: str):
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


def vocabulary(tokens) -> list[str]:
    return sorted(set(tokens), key=natural_key)


def _left_pad(items: np.ndarray, length: int) -> torch.Tensor:
    out = torch.zeros(length, dtype=torch.long)
    if length and len(items):
        tail = items[-length:]
        out[length - len(tail):] = torch.as_tensor(tail, dtype=torch.long)
    return out


class TrainExamples(Dataset):
    """One example per training interaction: ``({"user", ["item"], ["history"]}, target)``."""

    def __init__(self, user: np.ndarray, item: np.ndarray, target: torch.Tensor, seqs: list[np.ndarray],
                 seq: np.ndarray, pos: np.ndarray, history: int, pair: bool):
        self.user, self.item, self.target = torch.as_tensor(user), torch.as_tensor(item), target
        self.seqs, self.seq, self.pos, self.history, self.pair = seqs, seq, pos, history, pair

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int):
        inputs = {"user": self.user[i]}
        if self.pair:
            inputs["item"] = self.item[i]
        if self.history:
            seq, pos = self.seqs[self.seq[i]], self.pos[i]
            inputs["history"] = _left_pad(seq[max(0, pos - self.history):pos], self.history)
        return inputs, self.target[i]


class EvalUsers(Dataset):
    """One example per evaluated user: target ``[2, n_items]`` (relevant, known/excluded)."""

    def __init__(self, user: list[int], history: list[np.ndarray], relevant: list[np.ndarray],
                 known: list[np.ndarray], n_items: int, length: int):
        self.user = torch.as_tensor(user, dtype=torch.long)
        self.hist = [_left_pad(h, length) for h in history] if length else None
        self.relevant, self.known, self.n_items = relevant, known, n_items

    def __len__(self) -> int:
        return len(self.user)

    def __getitem__(self, i: int):
        target = torch.zeros(2, self.n_items, dtype=torch.bool)
        target[0, torch.as_tensor(self.relevant[i], dtype=torch.long)] = True
        target[1, torch.as_tensor(self.known[i], dtype=torch.long)] = True
        inputs = {"user": self.user[i]}
        if self.hist is not None:
            inputs["history"] = self.hist[i]
        return inputs, target


def _features(table: dict[str, dict[str, list[str]]], ids: list[str]) -> dict:
    """``{column: {"vocab": tokens, "rows": [[token index, ...] per vocab row]}}``; row 0 is padding."""
    out = {}
    for column, by_id in table.items():
        vocab = vocabulary(t for tokens in by_id.values() for t in tokens)
        index = {t: i + 1 for i, t in enumerate(vocab)}
        out[column] = {"vocab": vocab, "rows": [[]] + [[index[t] for t in by_id.get(x, [])] for x in ids]}
    return out


def build_bundle(fmt: str, o: RecDataOptions, backbone, ctx) -> DataBundle:
    """Read, split, index and wrap a recommender dataset for ``ctx.task_type``."""
    data, sp = load(fmt, o)
    ranking = ctx.task_type == "ranking"
    length = int(getattr(backbone, "max_history", 0) or 0)
    users = vocabulary(data.users[sp.train].tolist())
    items = vocabulary([*data.items.tolist(), *data.catalogue])
    bound = getattr(backbone, "vocab", None)
    if bound and (bound.get("user") != users or bound.get("item") != items):  # ft eval on changed data
        raise DataError("the data's user/item IDs differ from the run's ID vocabulary (data.json), so its "
                        "indices would not match the model's rows", where=data.source,
                        hint="evaluate on the data the run was trained on, or fine-tune with init_from")
    uindex = {u: i + 1 for i, u in enumerate(users)}
    iindex = {x: i + 1 for i, x in enumerate(items)}
    u_of = np.array([uindex.get(u, 0) for u in data.users.tolist()], dtype=np.int64)
    i_of = np.array([iindex[x] for x in data.items.tolist()], dtype=np.int64)
    n_items = len(items) + 1

    train_seqs = splits.user_sequences(data, sp.train)
    seqs, seq_of, pos_of = [], np.zeros(len(data), dtype=np.int64), np.zeros(len(data), dtype=np.int64)
    for rows in train_seqs.values():
        seq_of[rows], pos_of[rows] = len(seqs), np.arange(len(rows))
        seqs.append(i_of[rows])
    rows, positive = training_rows(data, sp, o, ranking)
    target = torch.as_tensor(i_of[rows]) if ranking else torch.as_tensor(data.ratings[rows], dtype=torch.float32)
    train = TrainExamples(u_of[rows], i_of[rows], target, seqs, seq_of[rows], pos_of[rows], length, not ranking)

    def evaluation(part: np.ndarray, known_rows: np.ndarray):
        if len(part) == 0:
            return None
        known = splits.user_sequences(data, known_rows)
        if not ranking:
            hist = [known.get(u, np.zeros(0, dtype=np.int64)) for u in data.users[part].tolist()]
            return TrainExamples(u_of[part], i_of[part], torch.as_tensor(data.ratings[part], dtype=torch.float32),
                                 [i_of[h] for h in hist], np.arange(len(part)), np.array([len(h) for h in hist]),
                                 length, True)
        ev_user, ev_hist, ev_rel, ev_known = [], [], [], []
        for user, held in splits.user_sequences(data, part).items():
            seen = i_of[known.get(user, np.zeros(0, dtype=np.int64))]
            relevant = np.setdiff1d(i_of[held[positive[held]]], seen)
            if len(relevant):
                ev_user.append(uindex.get(user, 0))
                ev_hist.append(seen)
                ev_rel.append(relevant)
                ev_known.append(np.unique(seen))
        return EvalUsers(ev_user, ev_hist, ev_rel, ev_known, n_items, length) if ev_user else None

    val = evaluation(sp.val, sp.train)
    test = evaluation(sp.test, np.concatenate([sp.train, sp.val]))
    if ranking:
        task = TaskInfo("ranking", n_items, (PAD, *items), {"pad_index": 0})
    else:
        task = TaskInfo(ctx.task_type, 1, ("rating",), {"mean_rating": float(data.ratings[sp.train].mean())})
    info = {
        "vocab": {"user": users, "item": items},
        "features": {"item": _features(data.item_features, items), "user": _features(data.user_features, users)},
        "split_facts": sp.facts,
        "counts": {"interactions": len(data), "train_interactions": int(len(sp.train)),
                   "val_interactions": int(len(sp.val)), "test_interactions": int(len(sp.test)),
                   "users": len(users), "items": len(items)},
        "source": data.source,
    }
    stat = Path(data.source).stat()
    fingerprint = hashlib.sha1(json.dumps([data.source, stat.st_size, stat.st_mtime_ns, fmt, ctx.task_type, length,
                                           o.model_dump(mode="json")], sort_keys=True).encode()).hexdigest()
    return DataBundle(train, val, test, task, fingerprint=fingerprint, info=info)


def read_input(fmt: str, raw: str, o: RecDataOptions, backbone) -> dict:
    """``ft predict RUN USER`` (ranking) or ``USER:ITEM`` (rating) -> model inputs.

    The user's history is their training interactions in the run's data
    (re-read with the run's options); for ranking, those items are excluded.
    """
    vocab = getattr(backbone, "vocab", None) or {}
    uindex = {u: i + 1 for i, u in enumerate(vocab.get("user", []))}
    iindex = {x: i + 1 for i, x in enumerate(vocab.get("item", []))}
    user, sep, item = raw.strip().partition(":")
    if user not in uindex:
        raise DataError(f"user {user!r} has no training interaction in this run's data", where=f"input {raw!r}",
                        hint="give a user ID from the training split")
    data, sp = load(fmt, o)
    rows = splits.user_sequences(data, sp.train).get(user, np.zeros(0, dtype=np.int64))
    seen = np.array([iindex[x] for x in data.items[rows].tolist() if x in iindex], dtype=np.int64)
    length = int(getattr(backbone, "max_history", 0) or 0)
    inputs = {"user": torch.tensor(uindex[user])}
    if length:
        inputs["history"] = _left_pad(seen, length)
    if sep:
        if item not in iindex:
            raise DataError(f"item {item!r} is not in this run's catalogue", where=f"input {raw!r}")
        inputs["item"] = torch.tensor(iindex[item])
    else:
        exclude = torch.zeros(len(iindex) + 1, dtype=torch.bool)
        exclude[torch.as_tensor(seen, dtype=torch.long)] = True
        inputs["exclude"] = exclude
    return inputs
