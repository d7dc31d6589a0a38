"""Several ``ft sweep`` workers on one study in a real PostgreSQL server
(started here, stopped at the end): one worker is killed mid-trial, the
other finishes the study without losing that trial or counting one twice.

Needs the PostgreSQL server binaries (Debian: ``apt-get install
postgresql``); skipped without them, except on CI (``CI`` set), where a
missing server is a failure."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from toy_plugin import toy_recipe, write_recipe

FT = [sys.executable, "-m", "ft.cli"]


def server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: Debian's newest, else the PATH's."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A PostgreSQL server on a free port of 127.0.0.1 (trust auth) with a
    database ``ft``; yields its SQLAlchemy URL and stops it afterwards."""
    binaries = server_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have the PostgreSQL server binaries (apt-get install postgresql)")
        pytest.skip("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="ft-postgres-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def server(*args: str) -> None:
        subprocess.run([*as_owner, *args], check=True, capture_output=True, text=True, timeout=120)

    server(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    server(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
           f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as db:
            db.execute("CREATE DATABASE ft")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/ft"
    finally:
        subprocess.run([*as_owner, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_postgresql_study_and_a_killed_workers_trial_runs_again(postgres, toy_env, tmp_path):
    import optuna

    recipe = toy_recipe(tmp_path, data={"spread": 3.0, "delay": 0.004}, train={"epochs": 2, "monitor": "val_loss"})
    recipe["sweep"] = {"trials": 4, "pruner": "none", "heartbeat_interval": 1, "grace_period": 3,
                       "optim.lr": {"low": 1e-3, "high": 1e-1, "log": True}}
    path = write_recipe(tmp_path / "toy.toml", recipe)
    # two folders, as two machines would have: each holds only its own trials' run directories
    folders = {name: tmp_path / name for name in ("a", "b")}
    workers = {name: subprocess.Popen([*FT, "sweep", str(path), "--storage", postgres, "--dir", str(folder),
                                       "--quiet"], env=toy_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
               for name, folder in folders.items()}
    try:
        deadline = time.time() + 240
        while not list((folders["a"] / "trials").glob("*/checkpoints/latest.json")):  # a is inside a trial
            assert workers["a"].poll() is None, workers["a"].communicate()
            assert time.time() < deadline, "worker a never reached a checkpoint"
            time.sleep(0.05)
        workers["a"].kill()
        workers["a"].wait()
        out, err = workers["b"].communicate(timeout=300)
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert workers["b"].returncode == 0, err[-3000:]

    trials = optuna.load_study(study_name="toy", storage=postgres).get_trials()
    ended = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(ended) == 4 and len({t.number for t in ended}) == 4  # N finished, none twice
    killed = [t for t in trials if t.state.name == "FAIL" and t.user_attrs.get("failure") != "surplus"]
    assert len(killed) == 1 and killed[0].user_attrs["run_dir"].startswith(str(folders["a"]))
    retried = [t for t in ended if t.user_attrs.get("retry_of") == killed[0].number]
    assert len(retried) == 1 and retried[0].params == killed[0].params  # none lost
    assert f"trial {killed[0].number} failed because its worker died: queued to run again" in out

    run_dirs = [Path(t.user_attrs["run_dir"]) for t in ended]
    assert len(set(run_dirs)) == 4 and all((d / "summary.json").exists() for d in run_dirs)
    assert all(d.name == f"trial-{t.number:04d}" for d, t in zip(run_dirs, ended))
    on_disk = {p for folder in folders.values() for p in (folder / "trials").iterdir()}
    assert on_disk - set(run_dirs) <= {Path(killed[0].user_attrs["run_dir"])}  # only the dead trial's leftovers
    assert len((folders["b"] / "results.csv").read_text().splitlines()) == 1 + len(ended) + len(killed)
