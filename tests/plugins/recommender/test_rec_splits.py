"""The three splits: time cutoff, cold-start users, leave-last-out."""

from __future__ import annotations

import numpy as np
import pytest

from ft.errors import DataError
from ft.plugins.recommender import readers, splits

from rec_testkit import synthetic, write_csv


@pytest.fixture
def data(tmp_path):
    return readers.read_csv(write_csv(tmp_path / "r.csv", synthetic(n_users=30, per_user=12)),
                            user="user", item="item", rating="rating", timestamp="timestamp")


def test_by_time_quantile_cutoff(data):
    sp = splits.by_time(data, 0.7)
    cut = np.quantile(data.times, 0.7)
    assert sp.facts["cutoff"] == pytest.approx(cut)
    assert data.times[sp.train].max() < cut <= data.times[sp.test].min()
    assert len(sp.train) + len(sp.test) == len(data) and len(sp.val) == 0
    assert abs(len(sp.train) / len(data) - 0.7) < 0.05


def test_by_time_timestamp_cutoff_and_validation_period(data):
    cut = float(np.median(data.times))
    sp = splits.by_time(data, cut, val_cutoff=0.25)
    vcut = np.quantile(data.times, 0.25)
    assert data.times[sp.train].max() < vcut
    assert vcut <= data.times[sp.val].min() and data.times[sp.val].max() < cut
    assert data.times[sp.test].min() >= cut
    assert len(sp.train) + len(sp.val) + len(sp.test) == len(data)
    with pytest.raises(DataError, match="val_cutoff"):
        splits.by_time(data, 0.3, val_cutoff=0.5)


def test_by_user_cold_start_users(data):
    k = 3
    sp = splits.by_user(data, 0.5, k=k, val_users=0.25, seed=1)
    cut = sp.facts["cutoff"]
    warm = set(data.users[data.times < cut])
    train_users, eval_rows = data.users[sp.train], np.concatenate([sp.val, sp.test])
    cold = set(train_users)
    assert cold and not cold & warm  # cold users never appear before the cutoff
    assert set(data.users[eval_rows]) <= cold
    for user in cold:
        mine = np.flatnonzero(data.users == user)
        first = mine[np.argsort(data.times[mine], kind="stable")]
        trained = sp.train[train_users == user]
        assert len(trained) == min(k, len(mine))  # exactly their first k interactions by time
        assert set(trained) == set(first[:k])
        held = eval_rows[data.users[eval_rows] == user]
        assert set(held) == set(first[k:])
        assert data.times[held].min() >= data.times[trained].max()
    val_users, test_users = set(data.users[sp.val]), set(data.users[sp.test])
    assert not val_users & test_users and len(val_users) == round(0.25 * len(cold))
    assert sp.facts["cold_users"] == len(cold) and set(data.users[sp.before]) == warm


def test_by_user_include_warm_trains_on_the_past(data):
    sp = splits.by_user(data, 0.5, k=2, include_warm=True)
    assert set(sp.before) <= set(sp.train)
    assert len(sp.train) == len(sp.before) + 2 * sp.facts["cold_users"]


def test_by_user_needs_cold_users(data):
    with pytest.raises(DataError, match="no user appears only"):
        splits.by_user(data, 0.99, k=2)


def test_leave_last_out(data):
    sp = splits.leave_last_out(data)
    for user in set(data.users):
        mine = np.flatnonzero(data.users == user)
        ordered = mine[np.argsort(data.times[mine], kind="stable")]
        assert sp.test[np.isin(sp.test, mine)].tolist() == [ordered[-1]]
        assert sp.val[np.isin(sp.val, mine)].tolist() == [ordered[-2]]
        assert set(sp.train[np.isin(sp.train, mine)]) == set(ordered[:-2])
    no_val = splits.leave_last_out(data, validation=False)
    assert len(no_val.val) == 0 and len(no_val.test) == len(set(data.users))


def test_splits_needing_time_refuse_untimed_data(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("a", "x", 4), ("a", "y", 3), ("a", "z", 3)], header=("user", "item", "rating"))
    data = readers.read_csv(path, user="user", item="item", rating="rating", timestamp=None)
    with pytest.raises(DataError, match="needs timestamps"):
        splits.by_time(data, 0.5)
    sp = splits.leave_last_out(data)  # file order stands in for time
    assert data.items[sp.test].tolist() == ["z"] and data.items[sp.val].tolist() == ["y"]
