"""Two "nodes" of one rank each over loopback, started as a user would on
two machines: ``ft run RECIPE --nnodes 2 --nproc-per-node 1 --rdzv-endpoint
HOST:PORT`` (c10d rendezvous, so either node may become rank 0).

One run directory appears; a worker killed mid-epoch is resumed with
``--resume`` on both nodes and ends with the unbroken run's weights; a
resume that one node cannot see fails on both nodes with a message, never
a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from ddp_testkit import free_port, history
from toy_plugin import toy_recipe, write_recipe

FT = [sys.executable, "-m", "ft.cli"]


def start_nodes(recipe: Path, env: dict, *extra: str, cwds: tuple[Path, Path] | None = None) -> list[subprocess.Popen]:
    port = free_port()
    command = [*FT, "run", str(recipe), "--quiet", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-endpoint", f"127.0.0.1:{port}", *extra]
    return [subprocess.Popen(command, env=env, cwd=str(cwds[i]) if cwds else None, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True) for i in range(2)]


def finish(nodes: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    out = []
    for node in nodes:
        try:
            _, stderr = node.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for n in nodes:
                os.killpg(n.pid, signal.SIGKILL)
            raise AssertionError("a node hung")
        out.append((node.returncode, stderr))
    return out


def workers_of(agent_pid: int) -> list[int]:
    """The worker processes a launcher started (its children, from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == agent_pid:
                found.append(int(entry.name))
    return found


def final_weights(run_dir: Path) -> dict:
    return load_file(str(run_dir / "checkpoints" / "epoch-3" / "model.safetensors"))


def test_two_nodes_share_one_run_and_a_killed_worker_resumes_exactly(toy_env, tmp_path):
    env = {**toy_env, "OMP_NUM_THREADS": "1"}
    sections = dict(data={"n_train": 320, "delay": 0.004, "augment_noise": 0.2}, head={"dropout": 0.2},
                    train={"epochs": 3, "batch_size": 16})
    recipes = {}
    for name in ("unbroken", "broken"):
        body = toy_recipe(tmp_path, **sections, output={"root": str(tmp_path / name)})
        del body["output"]["dir"]
        recipes[name] = write_recipe(tmp_path / f"{name}.toml", body)

    results = finish(start_nodes(recipes["unbroken"], env))
    assert [code for code, _ in results] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
    [unbroken] = list((tmp_path / "unbroken").iterdir())  # one run directory, not one per node

    nodes = start_nodes(recipes["broken"], env)
    deadline = time.time() + 180
    while not list((tmp_path / "broken").glob("*/checkpoints/epoch-1")):
        assert time.time() < deadline and all(n.poll() is None for n in nodes), "the run never reached epoch 2"
        time.sleep(0.05)
    time.sleep(0.5)  # inside epoch 2
    victims = workers_of(nodes[1].pid)
    assert victims, "no worker found under the second node's launcher"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    codes = [code for code, _ in finish(nodes)]
    assert all(code != 0 for code in codes), codes
    [broken] = list((tmp_path / "broken").iterdir())
    assert not (broken / "checkpoints" / "epoch-3").exists()

    results = finish(start_nodes(recipes["broken"], env, "--resume"))
    assert [code for code, _ in results] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
    assert list((tmp_path / "broken").iterdir()) == [broken]  # resumed in place
    a, b = final_weights(unbroken), final_weights(broken)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert history(unbroken) == history(broken)


def test_a_resume_one_node_cannot_see_fails_on_both_nodes(toy_env, tmp_path):
    """The run directory is given relative to each node's working folder, and
    only the first node has it: both nodes stop at once with exit code 2."""
    env = {**toy_env, "OMP_NUM_THREADS": "1"}
    node_a, node_b = tmp_path / "a", tmp_path / "b"
    node_b.mkdir()
    body = toy_recipe(tmp_path, train={"epochs": 1}, output={"dir": str(node_a / "run")})
    recipe = write_recipe(tmp_path / "r.toml", body)
    done = subprocess.run([*FT, "run", str(recipe), "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    t0 = time.time()
    results = finish(start_nodes(recipe, env, "--resume", "run", cwds=(node_a, node_b)), timeout=120)
    assert [code for code, _ in results] == [2, 2], results
    assert time.time() - t0 < 100
    messages = "".join(stderr for _, stderr in results)
    assert "Traceback" not in messages
    assert "cannot see the run's checkpoint" in messages or "no checkpoint to resume from" in messages
