"""``ft sweep``: the [sweep] section, trials as run directories, pruning,
the sweep folder, and a study that survives Ctrl-C, kill -9, several
workers and torchrun without losing or repeating a trial."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

import ft
from ft.errors import FtError
from ft.sweep import sweep

from toy_plugin import toy_recipe, write_recipe

FT = [sys.executable, "-m", "ft.cli"]


def sweep_recipe(tmp_path: Path, sweep: dict, **sections) -> dict:
    """The toy recipe (3 epochs, harder blobs, val_loss watched) with a [sweep] section."""
    sections.setdefault("data", {}).setdefault("spread", 3.0)
    sections.setdefault("train", {}).setdefault("monitor", "val_loss")
    recipe = toy_recipe(tmp_path, **sections)
    recipe["sweep"] = sweep
    return recipe


def results(folder: Path) -> list[dict]:
    with (folder / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def study_trials(folder: Path, name: str, url: str | None = None) -> list:
    import optuna

    return optuna.load_study(study_name=name, storage=url or f"sqlite:///{folder / 'study.db'}").get_trials()


def finished(trials: list) -> list:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


def ft_sweep(*args, env, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*FT, "sweep", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


# -- the [sweep] section -----------------------------------------------------------


def test_sweep_section_is_validated_like_every_other_key(registry, make_recipe):
    good = make_recipe()
    good["sweep"] = {"trials": 4, "optim.lr": {"low": 1e-4, "high": 1e-1, "log": True},
                     "train.batch_size": {"low": 16, "high": 64, "step": 16},
                     "freeze.strategy": ["full", "lora"],
                     "freeze.r": {"low": 2, "high": 8, "log": True, "when": {"freeze.strategy": "lora"}}}
    recipe = ft.load_recipe(good)
    kinds = {p.key: p.kind for p in recipe.sweep.params}
    assert kinds == {"optim.lr": "float", "train.batch_size": "int", "freeze.strategy": "categorical",
                     "freeze.r": "int"}
    assert recipe.sweep.settings.trials == 4 and recipe.sweep.settings.pruner == "median"
    again = ft.load_recipe(tomllib.loads(recipe.to_toml()))  # to_dict keeps it, and it reads back the same
    assert again.sweep.to_dict() == recipe.sweep.to_dict()

    bad = make_recipe()
    bad["sweep"] = {"trails": 3, "optim.lr": {"low": 1e-2, "high": 1e-4}, "optim.weight_decay": {"low": 0, "high": 1,
                    "log": True}, "head.dropout": [], "optim.eps": {"low": 1e-9, "high": 1e-7, "hgih": 2},
                    "freeze.r": {"low": 2, "high": 8, "when": {"freeze.strategy": "lora"}}}
    with pytest.raises(FtError) as err:
        ft.load_recipe(bad)
    text = str(err.value)
    assert "sweep.trails: unknown key — did you mean 'trials'" in text
    assert 'sweep."optim.lr": low (0.01) must be below high (0.0001)' in text
    assert 'sweep."optim.weight_decay": log = true needs low > 0' in text
    assert 'sweep."head.dropout": no choices (an empty list)' in text
    assert "sweep.\"optim.eps\".hgih: unknown key — did you mean 'high'" in text
    assert 'sweep."freeze.r".when: \'freeze.strategy\' is not a searched list of choices' in text


def test_searched_keys_and_values_are_checked_by_the_recipe_itself(registry, make_recipe):
    """Each choice, each range's ends (a conditional key with its condition)
    go through the recipe's own validation: its messages, named by the key."""
    bad = make_recipe()
    bad["sweep"] = {"optim.lrr": {"low": 1e-4, "high": 1e-1, "log": True}, "optim.lr": {"low": -1.0, "high": 0.1},
                    "freeze.strategy": ["full", "lora", "nope"],
                    "freeze.rank": {"low": 2, "high": 8, "when": {"freeze.strategy": "lora"}}}
    with pytest.raises(FtError) as err:
        ft.load_recipe(bad)
    text = str(err.value)
    assert 'sweep."optim.lrr": with optim.lrr = 0.0001: optim.lrr: unknown key' in text
    assert "did you mean 'lr'" in text
    assert 'sweep."optim.lr": with optim.lr = -1.0: optim.lr: Input should be greater than 0' in text
    assert "sweep.\"freeze.strategy\": with freeze.strategy = 'nope': freeze.strategy: unknown freeze strategy" in text
    # the conditional key is tried with its condition applied: lora's own options are what refuse it
    assert "sweep.\"freeze.rank\": with freeze.strategy = 'lora', freeze.rank = 2: freeze.rank: unknown key" in text
    assert text.count('sweep."optim.lrr"') == 1  # one line per problem, not one per value tried


def test_grid_needs_a_step_or_choices_everywhere(registry, make_recipe, tmp_path):
    recipe = make_recipe()
    recipe["sweep"] = {"sampler": "grid", "optim.lr": {"low": 1e-4, "high": 1e-1, "log": True}}
    with pytest.raises(FtError, match='the grid sampler needs a step on every range: sweep."optim.lr"'):
        ft.load_recipe(recipe)
    recipe["sweep"] = {"optim.lr": {"low": 1e-4, "high": 1e-1, "log": True}}
    with pytest.raises(FtError, match="grid sampler needs a step") as err:
        sweep(recipe, sampler="grid", sweep_dir=tmp_path / "grid")
    assert "use sampler" in err.value.hint


def test_ft_run_keeps_the_sweep_section_and_ignores_it(registry, make_recipe):
    recipe = make_recipe(train={"epochs": 1})
    recipe["sweep"] = {"trials": 2, "optim.lr": [1e-3, 1e-2]}
    result = ft.run(recipe, quiet=True)
    written = tomllib.loads((result.run_dir / "recipe.toml").read_text())
    assert written["optim"]["lr"] == 0.01 and written["sweep"]["optim.lr"] == [1e-3, 1e-2]
    assert result.metrics["test"]["accuracy"] > 0.5


def test_errors_name_what_to_do(registry, make_recipe, tmp_path, monkeypatch):
    plain = write_recipe(tmp_path / "plain.toml", make_recipe())
    with pytest.raises(FtError) as err:
        sweep(str(plain))
    assert err.value.where == str(plain) and "no [sweep] section" in err.value.message
    assert '"optim.lr" = { low = 1e-5' in err.value.hint

    empty = make_recipe()
    empty["sweep"] = {"trials": 3}
    with pytest.raises(FtError, match="sweep: no recipe key to search"):
        ft.load_recipe(empty)

    recipe = make_recipe()
    recipe["sweep"] = {"optim.lr": [1e-3, 1e-2]}
    url = "postgresql+psycopg://ft:s3cret@127.0.0.1:9/sweeps"  # port 9: nothing listens
    with pytest.raises(FtError) as err:
        sweep(recipe, storage=url, sweep_dir=tmp_path / "pg")
    assert "cannot reach the study database postgresql+psycopg://ft:***@127.0.0.1:9/sweeps" in str(err.value)
    assert "s3cret" not in str(err.value) and "accepts connections" in err.value.hint

    with pytest.raises(FtError, match="unknown pruner 'medain'"):
        sweep(recipe, pruner="medain", sweep_dir=tmp_path / "typo")

    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun (refused before any process group is joined)
    with pytest.raises(FtError, match="--workers with torchrun"):
        sweep(recipe, workers=2, sweep_dir=tmp_path / "torchrun")

    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed
    with pytest.raises(FtError) as err:
        sweep(recipe, sweep_dir=tmp_path / "no-optuna")
    assert 'pip install "ftkit[sweep]"' in err.value.hint


# -- a sweep in one process -----------------------------------------------------------


def test_trials_are_runs_scored_on_validation_the_pruner_stops_poor_ones(registry, tmp_path):
    """Four trials over a grid of learning rates, one good and three too small:
    the pruner stops poor trials after an epoch; the objective is each run's
    best validation figure; only the winner is scored on test; best.toml
    reproduces the winner."""
    recipe = sweep_recipe(tmp_path, {"trials": 4, "sampler": "grid", "prune_startup_trials": 1,
                                     "prune_from_epoch": 1, "optim.lr": [0.05, 1e-4, 2e-5, 1e-5]})
    result = sweep(recipe, sweep_dir=tmp_path / "sw", quiet=True)
    folder = tmp_path / "sw"
    rows = results(folder)
    assert sorted(int(r["trial"]) for r in rows) == [0, 1, 2, 3]
    assert {r["state"] for r in rows} <= {"complete", "pruned"} and "pruned" in {r["state"] for r in rows}
    for row in rows:
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert float(row["val_loss"]) == pytest.approx(summary["best_value"])  # the objective: best val figure
        assert "test" not in summary["metrics"]  # no trial is scored on test
        assert int(row["epochs"]) == summary["epochs_completed"]
        if row["state"] == "pruned":
            assert summary["stopped"] == "pruned" and int(row["epochs"]) < 3
        else:
            assert summary["stopped"] == "epochs" and int(row["epochs"]) == 3
    complete = [r for r in rows if r["state"] == "complete"]
    winner = min(complete, key=lambda r: float(r["val_loss"]))
    assert float(winner["optim.lr"]) == 0.05

    best = json.loads((folder / "best.json").read_text())
    assert best == result.best
    assert best["trial"] == int(winner["trial"]) and best["val"] == pytest.approx(float(winner["val_loss"]))
    assert best["params"] == {"optim.lr": 0.05} and best["monitor"] == "val_loss"
    assert best["test"] == pytest.approx(ft.evaluate_run(winner["run_dir"], "test"))
    assert (folder / "search.png").stat().st_size > 10_000

    best_toml = tomllib.loads((folder / "best.toml").read_text())
    assert "sweep" not in best_toml and best_toml["optim"]["lr"] == 0.05 and "dir" not in best_toml["output"]
    again = ft.run(folder / "best.toml", overrides={"output.dir": str(tmp_path / "again")}, quiet=True, test=False)
    assert again.summary["best_value"] == pytest.approx(best["val"])  # the winner, trained again


def test_the_study_reaches_n_finished_trials_in_total(registry, tmp_path):
    """``trials`` counts the study's finished trials: running it again with
    more continues it, with fewer does nothing new (here with the hyperband pruner)."""
    recipe = sweep_recipe(tmp_path, {"trials": 2, "pruner": "hyperband", "optim.lr": {"low": 1e-3, "high": 1e-1,
                                                                                      "log": True}},
                          train={"epochs": 1})
    folder = tmp_path / "sw"
    sweep(recipe, sweep_dir=folder, quiet=True)
    assert len(study_trials(folder, "recipe")) == 2
    sweep(recipe, sweep_dir=folder, quiet=True, trials=3)
    sweep(recipe, sweep_dir=folder, quiet=True, trials=1)
    trials = study_trials(folder, "recipe")
    assert len(finished(trials)) == len(trials) == 3
    assert sorted(p.name for p in (folder / "trials").iterdir()) == ["trial-0000", "trial-0001", "trial-0002"]


# -- the study's bookkeeping ------------------------------------------------------------


def test_a_new_trial_after_n_places_held_is_surplus_a_retry_never(tmp_path):
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from ft.sweep_space import SweepSettings
    from ft.sweep_study import tally

    study = optuna.create_study()
    lr = {"optim.lr": 0.01}, {"optim.lr": FloatDistribution(1e-4, 1e-1)}

    def add(state, user=None, system=None):
        study.add_trial(create_trial(state=state, params=lr[0], distributions=lr[1], user_attrs=user or {},
                                     system_attrs=system or {}, value=0.5 if state == TrialState.COMPLETE else None))

    add(TrialState.COMPLETE)                                      # 0: finished
    add(TrialState.FAIL, {"failure": "interrupted"})              # 1: its retry (5) is queued
    add(TrialState.FAIL, {"failure": "error", "error": "boom"})   # 2: gave its place up
    add(TrialState.RUNNING)                                       # 3: live
    add(TrialState.FAIL, {"failure": "died", "deaths": 2})        # 4: died once too often (retries 2): place up
    add(TrialState.WAITING, {"retry_of": 1}, {"failed_trial": 1, "retry_history": [1]})  # 5
    add(TrialState.RUNNING)                                       # 6: asked just now
    count = tally(study.get_trials(), SweepSettings(retries=2))
    assert (count.finished, count.held, count.queued) == (1, 4, True)  # lineages 0, 1 (via 5), 3, 6
    assert not count.surplus(3, 3, budget=3) and count.surplus(6, 6, budget=3) and not count.surplus(6, 6, 4)
    assert not count.surplus(5, 1, budget=1)  # a retry takes its lineage's place

    add(TrialState.FAIL, {"failure": "died", "deaths": 0})        # 7: died, its retry not queued yet
    assert tally(study.get_trials(), SweepSettings(retries=2)).places[7] == "awaiting"
    add(TrialState.FAIL, {"failure": "surplus"})                  # 8: never ran: not counted at all
    assert 8 not in tally(study.get_trials(), SweepSettings()).places


HOLDER = """
import sys, time, optuna
from ft.sweep_space import SweepSettings
from ft.sweep_study import Retry, open_storage
settings = SweepSettings(heartbeat_interval=1, grace_period=2)
storage = open_storage(sys.argv[1], settings, Retry(settings))
study = optuna.create_study(storage=storage, study_name="s")
def objective(trial):
    trial.suggest_float("optim.lr", 1e-4, 1e-1, log=True)
    trial.set_user_attr("worker", "elsewhere|boot|4026531836|4242|99")  # another machine: only heartbeats tell
    trial.set_user_attr("run_dir", "/elsewhere/trials/trial-0000")
    trial.report(0.5, 1)
    print("running", flush=True)
    time.sleep(600)
study.optimize(objective, n_trials=1)
"""


def test_a_trial_whose_heartbeat_stops_is_failed_and_queued_again(tmp_path):
    """A worker on another machine that dies: its trial's heartbeat goes
    quiet, and after grace_period a worker fails it and queues a retry with
    the same values and the epochs it reported."""
    import optuna

    from ft.sweep_space import SweepSettings
    from ft.sweep_study import Retry, fail_dead, open_storage, tally

    url = f"sqlite:///{tmp_path / 'study.db'}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "running"
        settings = SweepSettings(heartbeat_interval=1, grace_period=2)
        retry = Retry(settings)
        study = optuna.load_study(study_name="s", storage=open_storage(url, settings, retry))
        fail_dead(study, retry)
        assert [t.state.name for t in study.get_trials()] == ["RUNNING"]  # its heartbeat is fresh
    finally:
        holder.kill()
        holder.wait()
    time.sleep(3.5)
    fail_dead(study, retry)
    dead, again = study.get_trials()
    assert dead.state.name == "FAIL" and again.state.name == "WAITING" and retry.log == [(0, "died", True)]
    assert again.params == dead.params and again.intermediate_values == {1: 0.5}
    assert again.user_attrs == {"retry_of": 0, "deaths": 1, "previous_run_dir": "/elsewhere/trials/trial-0000"}
    assert again.system_attrs["failed_trial"] == 0 and tally(study.get_trials(), settings).held == 1


# -- the ft command: Ctrl-C, kill -9, several workers, torchrun ----------------------------


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_ctrl_c_and_kill_9_lose_no_trial_and_count_none_twice(toy_env, tmp_path):
    """Ctrl-C in trial 1: exit 130, how to continue; kill -9 in the next
    trial; each time ``ft sweep`` run again runs the broken trial again,
    from its checkpoint, under a new number, and the study ends with
    exactly N finished trials, one run directory each."""
    recipe = sweep_recipe(tmp_path, {"trials": 3, "pruner": "none", "optim.lr": {"low": 1e-3, "high": 1e-1,
                                                                                 "log": True}},
                          data={"delay": 0.004}, train={"epochs": 2})
    path = write_recipe(tmp_path / "toy.toml", recipe)
    folder = tmp_path / "runs" / "toy-sweep"
    args = [str(path), "--quiet"]

    proc = subprocess.Popen([*FT, "sweep", *args], env=toy_env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(folder / "trials" / "trial-0001" / "checkpoints" / "latest.json", proc)  # trial 1 has an epoch done
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert f"when the sweep continues:\n  ft sweep {path} --dir {folder}" in out
    interrupted = study_trials(folder, "toy")[1]
    assert interrupted.state.name == "FAIL" and interrupted.user_attrs["failure"] == "interrupted"

    proc = subprocess.Popen([*FT, "sweep", *args], env=toy_env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(folder / "trials" / "trial-0003" / "checkpoints" / "latest.json", proc)  # the trial after the retry
    proc.kill()
    first_out, _ = proc.communicate()
    assert "trial 2 (trial 1 again, from its checkpoint)" in first_out

    done = ft_sweep(*args, env=toy_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trial 3 failed because its worker died: queued to run again" in done.stdout
    assert "trial 4 (trial 3 again, from its checkpoint)" in done.stdout
    trials = study_trials(folder, "toy")
    ended = finished(trials)
    assert len(ended) == 3 and len({t.number for t in ended}) == 3
    assert [t.number for t in trials if t.state.name == "FAIL"] == [1, 3]
    by_number = {t.number: t for t in trials}
    assert by_number[2].params == by_number[1].params and by_number[4].params == by_number[3].params
    assert sorted(p.name for p in (folder / "trials").iterdir()) == [f"trial-{t.number:04d}" for t in ended]
    best = json.loads((folder / "best.json").read_text())
    assert best["trials"] == {"complete": 3, "pruned": 0, "failed": 2} and best["test"]["accuracy"] > 0


def test_two_local_workers_share_the_trials(toy_env, tmp_path):
    recipe = sweep_recipe(tmp_path, {"trials": 3, "pruner": "none", "optim.lr": {"low": 1e-3, "high": 1e-1,
                                                                                 "log": True}},
                          data={"delay": 0.006}, train={"epochs": 2})  # trials long enough that both workers start one
    path = write_recipe(tmp_path / "toy.toml", recipe)
    folder = tmp_path / "sw"
    done = ft_sweep(str(path), "--quiet", "--workers", "2", "--dir", str(folder), env=toy_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "starting 2 workers (1 CPU thread(s) each)" in done.stdout
    trials = study_trials(folder, "toy")
    assert len(trials) - sum(t.user_attrs.get("failure") == "surplus" for t in trials) == 3
    assert len(finished(trials)) == 3
    assert len({t.user_attrs["worker"] for t in finished(trials)}) == 2  # both ran trials
    assert len({json.dumps(t.params) for t in finished(trials)}) == 3
    assert "[worker 1/2]" in done.stdout and "[worker 2/2]" in done.stdout
    assert json.loads((folder / "best.json").read_text())["trials"]["complete"] == 3


def test_under_torchrun_every_rank_runs_each_trial(toy_env, tmp_path):
    """One torchrun job is one worker: rank 0 asks the study, every rank trains."""
    from ddp_testkit import free_port, torchrun

    recipe = sweep_recipe(tmp_path, {"trials": 2, "pruner": "none", "optim.lr": [0.01, 0.03]}, train={"epochs": 1})
    path = write_recipe(tmp_path / "toy.toml", recipe)
    folder = tmp_path / "sw"
    command = [*torchrun(), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "ft.cli", "sweep",
               str(path), "--quiet", "--dir", str(folder)]
    done = subprocess.run(command, env={**toy_env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ft: sweep: trial 0:") == 1  # rank 0 speaks
    for row in results(folder):
        assert json.loads((Path(row["run_dir"]) / "env.json").read_text())["world_size"] == 2
    assert json.loads((folder / "best.json").read_text())["test"]["accuracy"] > 0
