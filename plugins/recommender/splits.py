"""Train / validation / test splits of interactions.

* ``by_time``: everything before a cutoff trains, everything from it on is
  test (optionally a validation period ``[val_cutoff, cutoff)`` between).
* ``by_user``: cold-start users. Users with no interaction before the cutoff
  are the cold users; their first ``k`` interactions (by time) train and
  their later ones are evaluated. A seeded fraction ``val_users`` of them is
  the validation group, the rest the test group. Interactions before the
  cutoff train only with ``include_warm``; warm users' later ones are unused.
* ``leave_last_out``: each user's last interaction is test, the one before
  it validation, the rest train (users with fewer than 3 keep all in train).

A cutoff in (0, 1) is a quantile of the timestamps (numpy's linear
interpolation); a larger number is a timestamp. "Before" is ``t < cutoff``.
Within a user, time ties keep file order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ft.errors import DataError

from .readers import Interactions


@dataclass
class Split:
    """Row indices into an :class:`Interactions` per split, and facts for data.json.

    ``before`` holds the rows before the cutoff (``by_user``), which the
    popularity baseline counts even when they do not train.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    before: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    facts: dict = field(default_factory=dict)


def resolve_cutoff(times: np.ndarray, value: float) -> float:
    """A quantile in (0, 1) -> that quantile of ``times``; otherwise a timestamp."""
    return float(np.quantile(times, value)) if 0 < value < 1 else float(value)


def _need_times(data: Interactions, split: str) -> np.ndarray:
    if data.times is None:
        raise DataError(f"split = {split!r} needs timestamps, but the data has none", where=data.source,
                        hint="set data.timestamp_column, or use split = \"leave_last_out\"")
    return data.times


def _idx(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask).astype(np.int64)


def by_time(data: Interactions, cutoff: float, val_cutoff: float | None = None) -> Split:
    """Rows before ``cutoff`` train, the rest test; ``[val_cutoff, cutoff)`` validates."""
    times = _need_times(data, "by_time")
    cut = resolve_cutoff(times, cutoff)
    before = times < cut
    facts = {"split": "by_time", "cutoff": cut}
    if val_cutoff is None:
        return Split(_idx(before), np.zeros(0, dtype=np.int64), _idx(~before), facts=facts)
    vcut = resolve_cutoff(times, val_cutoff)
    if vcut >= cut:
        raise DataError(f"val_cutoff ({vcut:g}) must come before cutoff ({cut:g})", where="data.val_cutoff")
    facts["val_cutoff"] = vcut
    return Split(_idx(times < vcut), _idx((times >= vcut) & before), _idx(~before), facts=facts)


def user_sequences(data: Interactions, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``{user: row indices in time order}`` over ``rows`` (default: all)."""
    order = data.order()
    if rows is not None:
        keep = np.zeros(len(data), dtype=bool)
        keep[rows] = True
        order = order[keep[order]]
    users = data.users[order]
    if len(order) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(order)]
    return {users[s]: order[s:e] for s, e in zip(starts, ends)}


def by_user(data: Interactions, cutoff: float, k: int, val_users: float = 0.0, seed: int = 0,
            include_warm: bool = False) -> Split:
    """Cold-start users: absent before the cutoff, first ``k`` train, later ones evaluate."""
    times = _need_times(data, "by_user")
    cut = resolve_cutoff(times, cutoff)
    before = times < cut
    warm = set(data.users[before].tolist())
    cold = {u: rows for u, rows in user_sequences(data).items() if u not in warm}
    if not cold:
        raise DataError(f"no user appears only from the cutoff ({cut:g}) on, so there are no cold-start users",
                        where=data.source, hint="choose an earlier data.cutoff")
    names = sorted(cold)
    rng = np.random.default_rng(seed)
    n_val = int(round(val_users * len(names)))
    val_names = set(rng.permutation(np.array(names, dtype=object))[:n_val].tolist()) if n_val else set()
    train, val, test = [], [], []
    for user in names:
        rows = cold[user]
        train.append(rows[:k])
        (val if user in val_names else test).append(rows[k:])
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)  # noqa: E731
    before_idx = _idx(before)
    train_idx = cat(train + ([before_idx] if include_warm else []))
    facts = {"split": "by_user", "cutoff": cut, "k": k, "cold_users": len(names), "val_users": len(val_names),
             "test_users": len(names) - len(val_names), "include_warm": include_warm}
    return Split(np.sort(train_idx), np.sort(cat(val)), np.sort(cat(test)), before_idx, facts)


def leave_last_out(data: Interactions, validation: bool = True) -> Split:
    """Per user (time order): last -> test, the one before -> validation, rest -> train."""
    train, val, test = [], [], []
    for rows in user_sequences(data).values():
        need = 3 if validation else 2
        if len(rows) < need:
            train.append(rows)
            continue
        test.append(rows[-1:])
        if validation:
            val.append(rows[-2:-1])
            train.append(rows[:-2])
        else:
            train.append(rows[:-1])
    cat = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)  # noqa: E731
    return Split(cat(train), cat(val), cat(test), facts={"split": "leave_last_out", "validation": validation})
