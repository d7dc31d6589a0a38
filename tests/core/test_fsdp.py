"""``train.distributed = "fsdp"`` (FSDP2, ``fully_shard``) on 2 CPU ranks (gloo).

Sharded training equals DDP within float tolerance for full fine-tuning and
for the strategies that change which weights move (LoRA, frozen groups,
L2-SP); a sharded checkpoint (``torch.distributed.checkpoint``) resumes to
the unbroken run's exact weights, and ``ft export`` turns it into one
ordinary folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ft
from ddp_testkit import assert_close_dicts, history, outcome, run_jobs, weights
from ft.contracts import BuildContext
from toy_plugin import ToyOptions, build_backbone, toy_recipe

JOBS = {
    "full": dict(),
    "lora": dict(freeze={"strategy": "lora", "r": 4}),
    "freeze_bottom": dict(freeze={"strategy": "freeze_bottom", "n": 2}),
    "l2sp": dict(freeze={"strategy": "l2sp", "alpha": 0.1}),
}


def job(tmp: Path, name: str, mode: str, **sections) -> dict:
    train = {"epochs": 2, "batch_size": 16, "distributed": mode, **sections.pop("train", {})}
    return toy_recipe(tmp, backbone={"batchnorm": False}, optim={"lr": 0.01, "schedule": "cosine"},
                      train=train, output={"dir": str(tmp / f"{name}-{mode}")}, **sections)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fsdp")
    for mode in ("ddp", "fsdp"):
        run_jobs([{"name": name, "recipe": job(tmp, name, mode, **{k: dict(v) for k, v in sections.items()})}
                  for name, sections in JOBS.items()], tmp / mode, nproc=2)
    return tmp


@pytest.mark.parametrize("name", list(JOBS))
def test_fsdp_trains_what_ddp_trains(runs, name):
    fsdp, ddp = outcome(runs / "fsdp", name), outcome(runs / "ddp", name)
    assert fsdp["steps"] == ddp["steps"]
    for split in ddp["metrics"]:
        assert_close_dicts(fsdp["metrics"][split], ddp["metrics"][split], 1e-5, 1e-7, f"{name} {split}")
    for a, b in zip(history(fsdp["run_dir"]), history(ddp["run_dir"])):
        assert_close_dicts(a, b, 1e-5, 1e-7, f"{name} epoch {b['epoch']}")
    w_fsdp, w_ddp = weights(runs / "fsdp", name), weights(runs / "ddp", name)
    assert w_fsdp.keys() == w_ddp.keys()
    for key in w_ddp:
        torch.testing.assert_close(w_fsdp[key], w_ddp[key], rtol=1e-5, atol=1e-6, msg=lambda m: f"{key}: {m}")
    summary = json.loads(Path(fsdp["run_dir"], "summary.json").read_text())
    assert summary["settings"]["parallel"].startswith("FSDP2 over 2 ranks")
    if name == "freeze_bottom":  # the two frozen groups stay exactly as loaded, sharded or not
        pretrained = build_backbone(ToyOptions(batchnorm=False), BuildContext()).state_dict()
        for key in ("embed.0.weight", "embed.0.bias", "block1.0.weight"):
            assert torch.equal(w_fsdp[f"backbone.{key}"], pretrained[key]), key


def test_sharded_checkpoint_resumes_exactly_and_exports(runs, tmp_path, registry):
    """Stopped after one step (mid-epoch, a sharded checkpoint), resumed:
    the unbroken FSDP run's weights, bit for bit. Then ``ft export`` of
    that checkpoint (best/ removed) is one ordinary safetensors folder."""
    stopped = job(tmp_path, "stopped", "fsdp", train={"time_limit": 1e-9})
    run_jobs([{"name": "stopped", "recipe": stopped}], tmp_path / "a", nproc=2)
    run_dir = tmp_path / "stopped-fsdp"
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    checkpoint = run_dir / "checkpoints" / latest["checkpoint"]
    assert (latest["epoch"], latest["batch"]) == (0, 1)
    assert (checkpoint / "dcp").is_dir() and not (checkpoint / "model.safetensors").exists()
    assert sorted(p.name for p in (checkpoint / "dcp").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]

    run_jobs([{"name": "stopped", "recipe": stopped, "action": "resume",
               "overrides": {"train.time_limit": 3600}}], tmp_path / "b", nproc=2)
    unbroken, resumed = weights(runs / "fsdp", "full"), weights(tmp_path / "b", "stopped")
    final = run_dir / "checkpoints" / "epoch-2"
    assert (final / "dcp").is_dir()
    from ft.checkpoint import read_sharded_model

    unbroken_final = read_sharded_model(runs / "full-fsdp" / "checkpoints" / "epoch-2" / "dcp")
    resumed_final = read_sharded_model(final / "dcp")
    for key in unbroken_final:
        assert torch.equal(unbroken_final[key], resumed_final[key]), key
    assert resumed.keys() == unbroken.keys()

    import shutil

    shutil.rmtree(run_dir / "best")  # only the sharded checkpoint is left
    exported = ft.export_run(run_dir, tmp_path / "exported")
    plain = load_file(str(exported / "best" / "model.safetensors"))
    for key, value in resumed_final.items():
        assert torch.equal(plain[key], value), key
    assert ft.evaluate_run(exported)["accuracy"] > 0.8
