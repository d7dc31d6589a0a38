"""Ranks are one run (torchrun on CPU, gloo), on the toy plugin.

Two ranks with batch B/2 each train what one process with batch B trains:
the same per-epoch figures, final metrics and weights, for plain fine-tuning
with synchronised BatchNorm and for the freeze strategies that change how
training runs (cached linear probe, gradual unfreezing, LoRA, L2-SP). Only
rank 0 writes a run directory; stop decisions land on the same step on
every rank; evaluation is sharded and merged exactly; a killed run resumes
to the unbroken run's weights.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import ft
from ddp_testkit import (assert_same_training, free_port, history, outcome, run_jobs, torchrun, weights)
from toy_plugin import toy_recipe

BATCH = 32  # one process; two ranks take 16 each


def recipe(tmp_path: Path, name: str, *, ranks: int, **sections) -> dict:
    train = {"epochs": 2, "batch_size": BATCH // ranks, **sections.pop("train", {})}
    return toy_recipe(tmp_path, optim={"lr": 0.01, "schedule": "cosine", **sections.pop("optim", {})},
                      train=train, output={"dir": str(tmp_path / f"{name}-{ranks}")}, **sections)


STRATEGIES = {
    # SGD: the toy's Linear bias right before BatchNorm has a gradient that is zero up to rounding, and
    # Adam would blow that rounding up to full-size steps that differ between any two batch splits
    "full_sync_bn": dict(train={"sync_batchnorm": True}, optim={"name": "sgd", "lr": 0.05}),
    "linear_probe": dict(freeze={"strategy": "linear_probe"}, backbone={"batchnorm": False}),
    "gradual_unfreeze": dict(freeze={"strategy": "gradual_unfreeze", "every": 1},
                             backbone={"batchnorm": False}, train={"epochs": 3}),
    "lora": dict(freeze={"strategy": "lora", "r": 4}, backbone={"batchnorm": False}),
    "l2sp": dict(freeze={"strategy": "l2sp", "alpha": 0.1}, backbone={"batchnorm": False},
                 # a logger listening on ft_step_end every step (test_step_events_carry_every_ranks_loss)
                 log={"backends": ["tensorboard"]}, train={"log_every": 1}),
}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """Every strategy job on 2 ranks (one torchrun launch) and in one process."""
    tmp = tmp_path_factory.mktemp("ddp")
    for ranks in (2, 1):
        jobs = [{"name": name, "recipe": recipe(tmp, name, ranks=ranks, **{k: dict(v) for k, v in sections.items()})}
                for name, sections in STRATEGIES.items()]
        run_jobs(jobs, tmp / f"out{ranks}", nproc=ranks)
    return tmp


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_two_ranks_equal_one_process_with_the_whole_batch(both, name):
    assert_same_training(both / "out2", both / "out1", name)
    if name == "linear_probe":  # the frozen features were cached, and each rank computed only its share
        summary = json.loads(Path(outcome(both / "out2", name)["run_dir"], "summary.json").read_text())
        assert summary["settings"]["feature_cache"].startswith("on")


def test_only_rank_zero_writes_and_figures_cover_every_rank(both):
    run_dir = Path(outcome(both / "out2", "full_sync_bn")["run_dir"])
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]  # one line per epoch, not one per rank
    assert lines[-1]["step"] == 16  # 240 examples / (16 x 2 ranks) = 8 steps per epoch
    for r in lines:  # throughput, data wait and peak memory in every epoch line
        assert r["examples_per_s"] > 0 and 0 <= r["data_wait"] <= 1 and r["peak_mem_mb"] > 0
    env = json.loads((run_dir / "env.json").read_text())
    assert (env["world_size"], env["backend"]) == (2, "gloo")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["settings"]["parallel"] == "DDP over 2 ranks" and summary["settings"]["sync_batchnorm"]


def test_step_events_carry_every_ranks_loss(both):
    """ft_step_end's train_loss on 2 ranks is the whole batch's, as one process reports it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def step_losses(out: Path) -> dict[int, float]:
        events = EventAccumulator(str(Path(outcome(out, "l2sp")["run_dir"]) / "tensorboard"),
                                  size_guidance={"scalars": 0})
        events.Reload()
        return {e.step: e.value for e in events.Scalars("train/loss")}

    two, one = step_losses(both / "out2"), step_losses(both / "out1")
    assert sorted(two) == sorted(one) == list(range(1, 17))  # every step of 2 epochs x 8 steps
    assert [two[s] for s in sorted(two)] == pytest.approx([one[s] for s in sorted(one)], rel=1e-4)


def test_one_run_directory_under_the_default_root(tmp_path):
    """No output.dir: rank 0 makes ``root/<recipe>-<time>`` and tells the
    others; no empty twin appears beside it."""
    root = tmp_path / "runs"
    job = toy_recipe(tmp_path, train={"epochs": 1, "batch_size": 16}, output={"root": str(root)})
    del job["output"]["dir"]
    run_jobs([{"name": "rooted", "recipe": job}], tmp_path / "out", nproc=2)
    made = list(root.iterdir())
    assert len(made) == 1 and (made[0] / "summary.json").exists()
    assert outcome(tmp_path / "out", "rooted", 1)["run_dir"] == str(made[0])


def test_two_identical_runs_are_bit_identical(registry, make_recipe, tmp_path):
    """The seed is set before the model is built: the new head starts the same."""
    first = ft.run(make_recipe(head={"dropout": 0.2}, output={"dir": str(tmp_path / "a")}), quiet=True)
    second = ft.run(make_recipe(head={"dropout": 0.2}, output={"dir": str(tmp_path / "b")}), quiet=True)
    a, b = first.model.state_dict(), second.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert first.metrics == second.metrics
    assert history(first.run_dir) == history(second.run_dir)


def test_stop_decisions_land_on_the_same_step_on_every_rank(tmp_path):
    jobs = [
        {"name": "time_limit", "recipe": toy_recipe(tmp_path, data={"n_train": 4000}, train={
            "epochs": 50, "batch_size": 16, "time_limit": 2.0}, output={"dir": str(tmp_path / "t")})},
        {"name": "early", "recipe": toy_recipe(tmp_path, data={"spread": 0.2}, train={
            "epochs": 30, "batch_size": 16, "patience": 2, "monitor": "val_accuracy"},
            output={"dir": str(tmp_path / "e")})},
    ]
    run_jobs(jobs, tmp_path / "out", nproc=2)
    for name, reason in (("time_limit", "time_limit"), ("early", "early_stopping")):
        ranks = [outcome(tmp_path / "out", name, r) for r in (0, 1)]
        assert [r["stopped"] for r in ranks] == [reason, reason]
        assert ranks[0]["steps"] == ranks[1]["steps"] > 0
    early = outcome(tmp_path / "out", "early")
    assert early["epochs_run"] < 30


def test_sharded_evaluation_equals_one_process_exactly(both, tmp_path):
    """The same trained model evaluated on 2 ranks (each half the batches,
    evaluators merged) and in one process: the very same numbers."""
    regression = toy_recipe(tmp_path, task={"type": "regression"}, data={"n_test": 61},
                            train={"epochs": 2, "eval_batch_size": 8}, output={"dir": str(tmp_path / "reg")})
    run_jobs([{"name": "reg", "recipe": regression}], tmp_path / "train", nproc=1)
    runs = {"classification": outcome(both / "out1", "full_sync_bn")["run_dir"], "regression": str(tmp_path / "reg")}
    jobs = [{"name": f"{task}-{split}", "action": "eval", "run_dir": run_dir, "split": split}
            for task, run_dir in runs.items() for split in ("val", "test")]
    run_jobs(jobs, tmp_path / "eval2", nproc=2)
    run_jobs(jobs, tmp_path / "eval1", nproc=1)
    for job in jobs:
        one = outcome(tmp_path / "eval1", job["name"])["metrics"]
        assert outcome(tmp_path / "eval2", job["name"], 0)["metrics"] == one
        assert outcome(tmp_path / "eval2", job["name"], 1)["metrics"] == one
    assert set(outcome(tmp_path / "eval1", "regression-test")["metrics"]) == {"loss", "mae", "rmse"}


def test_ctrl_c_on_one_rank_stops_every_rank_at_the_same_step_and_resumes_exactly(tmp_path):
    """SIGINT reaches one worker only: both ranks stop after the same step,
    write a checkpoint, and the resumed run ends with the unbroken run's weights."""
    sections = dict(data={"n_train": 480, "delay": 0.004, "augment_noise": 0.3}, head={"dropout": 0.2},
                    train={"epochs": 2, "batch_size": 16})
    unbroken = toy_recipe(tmp_path, **sections, output={"dir": str(tmp_path / "unbroken")})
    run_jobs([{"name": "unbroken", "recipe": unbroken}], tmp_path / "u", nproc=2)

    broken = toy_recipe(tmp_path, **sections, output={"dir": str(tmp_path / "broken")})
    out = tmp_path / "b"
    out.mkdir()
    from ddp_testkit import ddp_env
    from toy_plugin import write_recipe

    path = write_recipe(out / "broken.toml", broken)
    (out / "jobs.json").write_text(json.dumps({"out": str(out), "jobs": [{"name": "broken", "recipe": str(path)}]}))
    proc = subprocess.Popen([*torchrun(), "--nproc_per_node", "2", "--master_port", str(free_port()),
                             str(Path(__file__).parents[1] / "ddp_driver.py"), str(out / "jobs.json")],
                            env=ddp_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "broken" / "checkpoints" / "latest.json").exists():  # epoch 1 is done
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)  # well inside epoch 2
    pid = int((out / "pid.rank1").read_text())
    import os

    os.kill(pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    ranks = [outcome(out, "broken", r) for r in (0, 1)]
    assert ranks[0].get("interrupted") and ranks[1].get("interrupted")
    latest = json.loads((tmp_path / "broken" / "checkpoints" / "latest.json").read_text())
    assert latest["epoch"] == 1 and latest["batch"] > 0  # stopped inside epoch 2, saved there

    run_jobs([{"name": "broken", "recipe": str(path), "action": "resume"}], tmp_path / "r", nproc=2)
    a, b = weights(tmp_path / "u", "unbroken"), weights(tmp_path / "r", "broken")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert history(tmp_path / "unbroken") == history(tmp_path / "broken")


def test_ft_run_starts_the_ranks_itself(toy_env, tmp_path):
    """``ft run RECIPE --nproc-per-node 2`` checks the recipe once, then starts
    two ranks (no torchrun to type); a bad recipe stops before any rank starts."""
    import sys

    from toy_plugin import write_recipe

    env = {**toy_env, "OMP_NUM_THREADS": "1"}
    good = write_recipe(tmp_path / "good.toml", toy_recipe(tmp_path, train={"epochs": 1, "batch_size": 16}))
    done = subprocess.run([sys.executable, "-m", "ft.cli", "run", str(good), "--nproc-per-node", "2",
                           "--set", "train.seed=3"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    env_json = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env_json["world_size"] == 2
    assert "world_size 2" in done.stdout and "rank 1 cpu" in done.stdout  # the banner: ranks and their devices
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["settings"]["batch"].endswith("= 32")

    bad = write_recipe(tmp_path / "bad.toml", toy_recipe(tmp_path, train={"epochs": 0}))
    done = subprocess.run([sys.executable, "-m", "ft.cli", "run", str(bad), "--nproc-per-node", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("train.epochs") == 1 and "Traceback" not in done.stderr


def test_a_worker_ends_with_its_code_its_atexit_handlers_and_its_output(tmp_path):
    """``end_worker`` skips the C++ teardown but nothing a program relies on:
    the exit code reaches the launcher, atexit handlers run, buffered output is flushed."""
    script = tmp_path / "worker.py"
    script.write_text(
        "import atexit, ft.distributed\n"
        "d = ft.distributed.get_distributed()\n"
        f"atexit.register(lambda: open({str(tmp_path)!r} + f'/atexit.{{d.rank}}', 'w').write('ran'))\n"
        "d.barrier()\n"
        "print(f'rank {d.rank} done', end='')  # no newline: still in the buffer at the end\n"
        "ft.distributed.end_worker(3 if d.rank == 1 else 0)\n")
    from ddp_testkit import ddp_env

    done = subprocess.run([*torchrun(), "--nproc_per_node", "2", "--master_port", str(free_port()), str(script)],
                          capture_output=True, text=True, env=ddp_env(), timeout=120)
    assert done.returncode != 0 and "exitcode  : 3" in done.stderr  # rank 1's code, as torchrun reports it
    assert "rank 0 done" in done.stdout and "rank 1 done" in done.stdout
    assert (tmp_path / "atexit.0").read_text() == "ran" and (tmp_path / "atexit.1").read_text() == "ran"
