"""ft.run end to end on the toy plugin: run directory, lifecycle hooks,
eval/predict, reloading, and the Python API."""

from __future__ import annotations

import json

import pytest
import torch

import ft
from ft.cli import main


def test_run_directory_has_everything(registry, make_recipe):
    result = ft.run(make_recipe(), quiet=True)
    d = result.run_dir
    for name in ("recipe.toml", "env.json", "task.json", "data.json", "metrics.jsonl", "summary.json",
                 "curves.png", "MODEL_CARD.md", "best/model.safetensors", "best/metrics.json",
                 "checkpoints/latest.json"):
        assert (d / name).exists(), name
    summary = json.loads((d / "summary.json").read_text())
    assert summary["metrics"]["test"]["accuracy"] == result.metrics["test"]["accuracy"]
    assert summary["params"]["trainable"] == sum(p.numel() for p in result.model.parameters())
    assert [g["group"] for g in summary["params"]["groups"]] == ["embed", "block1", "block2", "head"]
    env = json.loads((d / "env.json").read_text())
    assert env["device"] == "cpu" and env["versions"]["torch"] == torch.__version__
    assert "test" in (d / "MODEL_CARD.md").read_text()
    assert (d / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # the resolved recipe reproduces the run's configuration
    assert ft.load_recipe(d / "recipe.toml").to_dict() == result.recipe.to_dict()


def test_lifecycle_hooks_reach_plugins_in_order(registry, make_recipe):
    import toy_plugin

    recorder = toy_plugin.Recorder()
    registry.register(recorder, "recorder")
    ft.run(make_recipe(train={"epochs": 2}), quiet=True)
    kinds = [e[0] for e in recorder.events]
    assert kinds == ["start", "checkpoint", "epoch", "checkpoint", "epoch", "end"]
    assert recorder.events[2][1] == 1 and "val_accuracy" in recorder.events[2][2]
    assert recorder.events[1][2].name == "epoch-1" and (recorder.events[1][2] / "model.safetensors").exists()


def test_best_model_is_the_monitored_best(registry, make_recipe):
    result = ft.run(make_recipe(train={"epochs": 4, "monitor": "val_loss"}), quiet=True)
    history = [json.loads(l) for l in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    best = min(history, key=lambda r: r["val_loss"])
    assert result.summary["best_epoch"] == best["epoch"]
    assert result.metrics["val"]["loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def test_eval_and_predict_from_run_dir(registry, make_recipe, capsys):
    result = ft.run(make_recipe(), quiet=True)
    assert main(["eval", str(result.run_dir), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    assert main(["predict", str(result.run_dir), "1,2,3,4,5,6,7,8", "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("1,2,3,4,5,6,7,8: class_") and line.count("class_") == 2
    preds = ft.predict_run(result.run_dir, ["0,0,0,0,0,0,0,0"], top_k=3)
    assert sum(score for _, score in preds[0]) == pytest.approx(1.0, abs=1e-5)


def test_reloaded_model_gives_same_outputs(registry, make_recipe):
    result = ft.run(make_recipe(), quiet=True)
    loaded = ft.load_run(result.run_dir)
    x = torch.randn(5, 8)
    result.model.eval()
    torch.testing.assert_close(loaded.model(x), result.model(x))


def test_existing_run_dir_is_not_overwritten(registry, make_recipe):
    recipe = make_recipe()
    ft.run(recipe, quiet=True)
    with pytest.raises(ft.FtError, match="already holds a run"):
        ft.run(recipe, quiet=True)


def test_resume_without_checkpoint_is_a_clear_error(registry, make_recipe):
    with pytest.raises(ft.FtError, match="no checkpoint to resume from"):
        ft.run(make_recipe(), quiet=True, resume=True)


def test_default_run_dir_and_resume_latest(registry, make_recipe, tmp_path):
    recipe = make_recipe(output={"root": str(tmp_path / "runs")}, train={"epochs": 2})
    del recipe["output"]["dir"]
    first = ft.run(recipe, quiet=True)
    assert first.run_dir.parent == tmp_path / "runs" and first.run_dir.name.startswith("recipe-")
    again = ft.run(recipe, overrides={"train.epochs": 3}, quiet=True, resume=True)
    assert again.run_dir == first.run_dir and again.summary["epochs_run"] == 3


def test_build_model_and_recipe_api(registry, make_recipe):
    model = ft.build_model(make_recipe(data={"n_classes": 5}))
    assert isinstance(model, ft.FtModel)
    assert model(torch.randn(2, 8)).shape == (2, 5)
    assert model.task.class_names[-1] == "class_4"


def test_always_frozen_backbone_params_survive_any_strategy(registry, make_recipe):
    import toy_plugin

    class Pinned(toy_plugin.ToyBackbone):
        always_frozen = ("embed",)

    recipe = ft.load_recipe(make_recipe(train={"epochs": 1}))
    model, bundle, strategy = ft.assemble(recipe)
    pinned = Pinned()
    pinned.load_state_dict(model.backbone.state_dict())
    model.backbone = pinned
    before = {k: v.clone() for k, v in pinned.embed.state_dict().items() if "running" not in k and "num_batches" not in k}
    trainer = ft.Trainer(model, bundle.train, None, train=recipe.train, optim=recipe.optim, strategy=strategy, quiet=True)
    trainer.fit()
    for k, v in pinned.embed.state_dict().items():
        if k in before:
            assert torch.equal(v, before[k]), k
    assert all(not p.requires_grad for p in pinned.embed.parameters())
    assert any(p.requires_grad for p in pinned.block1.parameters())


def test_plugin_factory_data_error_is_clear(registry, make_recipe, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3,4,5,6,7,8,0\n1,2,x,4,5,6,7,8,1\n")
    with pytest.raises(ft.DataError, match=r"bad\.csv: row 2: expected 8 numbers"):
        ft.run(make_recipe(data={"csv": str(bad)}), quiet=True)
