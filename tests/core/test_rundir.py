"""The run directory has one owner: a lock, no debris, no mixing, strict JSON,
a refused resume of a different recipe, a guard against NaN."""

from __future__ import annotations

import json
import math
import os
import stat

import pytest
import torch

import ft
from ft.rundir import RunDirectory
from test_trainer import Crash, CrashAfterEpoch  # a callback that kills a run after an epoch


def test_a_second_writer_is_refused_while_the_first_holds_the_run(registry, make_recipe, tmp_path):
    holder = RunDirectory(tmp_path / "run").open(fresh=True)
    try:
        with pytest.raises(ft.FtError, match=r"another ft process is writing this run directory \(pid \d+"):
            ft.run(make_recipe(), quiet=True)
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]  # nothing of the second run
    finally:
        holder.close()
    ft.run(make_recipe(), quiet=True)  # released: the run goes ahead


def test_a_failed_start_leaves_no_directory(registry, make_recipe, tmp_path):
    recipe = make_recipe(data={"csv": str(tmp_path / "missing.csv")})
    recipe["output"] = {"root": str(tmp_path / "runs")}
    with pytest.raises(ft.FtError):
        ft.run(recipe, quiet=True)
    assert not (tmp_path / "runs").exists()


def test_a_fresh_start_over_a_start_that_never_checkpointed_does_not_append(registry, make_recipe, tmp_path):
    recipe = make_recipe(train={"epochs": 2})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recipe.toml").write_text("# an earlier start, killed before its first checkpoint\n")
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 9.0}\n')
    ft.run(recipe, quiet=True)
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_repair_puts_back_a_half_swapped_best_and_drops_debris(registry, make_recipe, tmp_path):
    recipe = make_recipe(train={"epochs": 2})
    with pytest.raises(Crash):
        ft.run(recipe, quiet=True, callbacks=[CrashAfterEpoch(1)])
    run_dir = tmp_path / "run"
    best = (run_dir / "best" / "model.safetensors").read_bytes()
    os.replace(run_dir / "best", run_dir / ".best.old-4242")  # killed between the two renames of the swap
    (run_dir / ".best.tmp").mkdir()
    (run_dir / "checkpoints" / ".epoch-2.tmp-abc").mkdir()
    (run_dir / "checkpoints" / ".latest.json.x1.tmp").write_text("{")
    with (run_dir / "metrics.jsonl").open("a") as fh:
        fh.write('{"epoch": 2, "train_lo')  # a line the kill cut short
    opened = RunDirectory(run_dir).open(fresh=False)
    opened.close()
    assert "restored best" in opened.repaired
    assert (run_dir / "best" / "model.safetensors").read_bytes() == best
    assert [p.name for p in run_dir.rglob(".*")] == [".lock"]
    assert (run_dir / "metrics.jsonl").read_text().endswith("}\n")
    ft.run(recipe, quiet=True, resume=True)


def test_resume_refuses_a_different_recipe_before_writing_anything(registry, make_recipe, tmp_path):
    recipe = make_recipe(train={"epochs": 2})
    with pytest.raises(Crash):
        ft.run(recipe, quiet=True, callbacks=[CrashAfterEpoch(1)])
    run_dir = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(ft.FtError, match=r"different recipe: optim.lr 0.01 -> 0.5, train.batch_size 16 -> 8"):
        ft.run(recipe, overrides={"optim.lr": 0.5, "train.batch_size": 8}, quiet=True, resume=True)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_resume_refuses_changed_data(registry, make_recipe, tmp_path):
    data = write_blobs_csv(tmp_path / "blobs.csv", seed=0)
    recipe = make_recipe(data={"csv": str(data)}, train={"epochs": 2})
    with pytest.raises(Crash):
        ft.run(recipe, quiet=True, callbacks=[CrashAfterEpoch(1)])
    write_blobs_csv(data, seed=1)
    with pytest.raises(ft.FtError, match=r"different data: the file\(s\) named by data.csv changed"):
        ft.run(recipe, quiet=True, resume=True)


def test_resume_accepts_more_epochs_and_records_the_change(registry, make_recipe, tmp_path):
    recipe = make_recipe(train={"epochs": 2})
    ft.run(recipe, quiet=True)
    result = ft.run(recipe, overrides={"train.epochs": 3}, quiet=True, resume=True)
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["resumes"][-1]["changed"] == {"train.epochs": [2, 3]}
    assert run["recipe"]["train"]["epochs"] == 3
    history = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_run_files_follow_the_umask(registry, make_recipe):
    old = os.umask(0o022)
    try:
        result = ft.run(make_recipe(train={"epochs": 1}), quiet=True)
    finally:
        os.umask(old)
    for path in result.run_dir.rglob("*"):
        if path.name == ".lock":
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def test_a_diverging_run_skips_nonfinite_steps_then_stops_with_its_last_checkpoint(registry, make_recipe,
                                                                                 tmp_path):
    recipe = make_recipe(train={"epochs": 3, "max_nonfinite_steps": 3}, optim={"lr": 1e30, "name": "sgd"})
    with pytest.raises(ft.FtError, match=r"training diverged: .* NaN/inf in 4 steps in a row") as caught:
        ft.run(recipe, quiet=True)
    assert "lower optim.lr (now 1e+30)" in str(caught.value)
    run_dir = tmp_path / "run"
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():  # strict JSON: no NaN tokens
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
    if (run_dir / "best").exists():  # a best model is never a NaN epoch's
        best = json.loads((run_dir / "best" / "metrics.json").read_text())
        assert best["val_loss"] is not None and math.isfinite(best["val_loss"])


def test_a_few_nonfinite_steps_are_skipped_and_counted(registry, make_recipe, tmp_path):
    # two training rows so large that LayerNorm's variance overflows: their batches' gradients are NaN
    data = write_blobs_csv(tmp_path / "blobs.csv", seed=0, poison=(10, 100))
    recipe = make_recipe(data={"csv": str(data)}, backbone={"batchnorm": False}, train={"epochs": 2})
    result = ft.run(recipe, quiet=True)
    history = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    per_epoch = [history[0]["skipped_steps"], history[1]["skipped_steps"] - history[0]["skipped_steps"]]
    assert all(n in (1, 2) for n in per_epoch)  # the two rows share a batch or not
    assert result.summary["skipped_steps"] == sum(per_epoch)
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in history)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert history[-1]["val_accuracy"] > 0.6  # the other steps trained


def test_strict_json_everywhere():
    from ft.rundir import strict_json

    assert json.loads(strict_json({"a": float("nan"), "b": [1.0, float("inf")]})) == {"a": None, "b": [1.0, None]}


def write_blobs_csv(path, seed: int, poison: tuple[int, ...] = ()):
    """Toy blobs as CSV rows (8 numbers, a label): 240 train, 60 val, 60 test."""
    from toy_plugin import BlobOptions, make_blobs

    x, y = make_blobs(BlobOptions(seed=seed), "classification")
    for row in poison:
        x[row] = 1e30
    path.write_text("".join(",".join(f"{v:.9g}" for v in xs) + f",{int(c)}\n" for xs, c in zip(x.tolist(), y)))
    return path
