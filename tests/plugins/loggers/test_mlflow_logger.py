"""The mlflow logger against real MLflow stores (SQLite), read back with
MlflowClient: params, metric histories, artifacts, and the logged model
loaded with mlflow.pyfunc and predicting."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

import ft
import mlflow
from logger_testkit import FailAtStep, Reported, history
from mlflow import MlflowClient
from toy_plugin import toy_recipe, write_recipe

FAST = {"train.log_every": 5, "train.progress": False}
INPUTS = ["1,2,3,4,5,6,7,8", "-2,0.5,1,0,3,-1,2,0"]


@pytest.fixture(autouse=True)
def no_ambient_store(monkeypatch):
    """The tests choose the store; a developer's MLFLOW_TRACKING_URI must not leak in."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def steps_and_values(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def only_run(client: MlflowClient, experiment: str):
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, runs
    return found, runs[0]


def test_the_default_store_holds_the_whole_run(registry, make_recipe, tmp_path, monkeypatch):
    recipe = make_recipe(log={"backends": ["mlflow"]}, recorder={"tag": "x" * 7000},
                         output={"root": str(tmp_path / "runs")})
    del recipe["output"]["dir"]
    reported = Reported()
    result = ft.run(recipe, FAST, quiet=True, callbacks=[reported])
    assert mlflow.active_run() is None  # the logger never leaves a run active in the process

    # the default store: a SQLite file beside the run directories, artifacts in mlartifacts/ next to it
    store = "sqlite:///" + str(tmp_path / "runs" / "mlflow.db")
    assert result.run_dir.parent == tmp_path / "runs"
    client = MlflowClient(store)
    experiment, run = only_run(client, "recipe")  # the recipe's name
    assert experiment.artifact_location == (tmp_path / "runs" / "mlartifacts").as_uri()
    assert run.info.status == "FINISHED" and run.info.run_name == result.run_dir.name
    tags = run.data.tags
    assert (tags["ftkit.version"], tags["ftkit.backbone"], tags["ftkit.strategy"]) == (ft.__version__, "toy_mlp",
                                                                                        "full")
    assert tags["ftkit.run_dir"] == str(result.run_dir)

    # params: the resolved recipe, flat, as text; a value over MLflow's limit cut with a marker
    params = run.data.params
    assert params["optim.lr"] == "0.01" and params["train.epochs"] == "3" and params["backbone.name"] == "toy_mlp"
    assert params["log.backends"] == '["mlflow"]'
    assert len(params["recorder.tag"]) == 6000 and params["recorder.tag"].endswith("...[truncated 7000 chars]")

    # per step (step = optimizer step) and per epoch (step = epoch): what the trainer reported
    run_id = run.info.run_id
    assert steps_and_values(client, run_id, "train/loss") == \
        pytest.approx({s: m["train_loss"] for s, m in reported.steps.items()})
    assert sorted(steps_and_values(client, run_id, "train/loss")) == list(range(5, 46, 5))
    group = "embed+block1+block2+head"  # `full` trains one group; MLflow keys take no '+'
    assert steps_and_values(client, run_id, "lr/embed_block1_block2_head") == \
        pytest.approx({s: m[f"lr_{group}"] for s, m in reported.steps.items()})
    rows = {row["epoch"]: row for row in history(result.run_dir)}
    for key, name in (("val/accuracy", "val_accuracy"), ("val/loss", "val_loss"),
                      ("train/epoch_loss", "train_loss"), ("perf/examples_per_s", "examples_per_s")):
        assert steps_and_values(client, run_id, key) == pytest.approx({e: r[name] for e, r in rows.items()}), key

    # the final evaluation (best model) under plain names, for the runs table
    final = result.summary["metrics"]
    assert run.data.metrics["test_accuracy"] == pytest.approx(final["test"]["accuracy"])
    assert run.data.metrics["val_loss"] == pytest.approx(final["val"]["loss"])
    assert run.data.metrics["best_epoch"] == result.summary["best_epoch"]

    # the run directory's files, without checkpoints or weights
    logged = {a.path for a in client.list_artifacts(run_id)}
    assert {"summary.json", "metrics.jsonl", "recipe.toml", "MODEL_CARD.md", "curves.png", "env.json"} <= logged
    assert not logged & {"checkpoints", "best", ".lock"}
    card = Path(client.download_artifacts(run_id, "MODEL_CARD.md", str(tmp_path / "down")))
    assert card.read_text() == (result.run_dir / "MODEL_CARD.md").read_text()

    # the model: a pyfunc model that loads back and predicts what ft.predict_run predicts
    model_uri = tags["ftkit.model_uri"]
    assert model_uri.startswith("models:/")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    model = mlflow.pyfunc.load_model(model_uri)
    predicted = model.predict(INPUTS, params={"top_k": 2})
    expected = ft.predict_run(result.run_dir, INPUTS, top_k=2)
    assert list(predicted["label"]) == [rows_[0][0] for rows_ in expected]
    assert list(predicted["score"]) == pytest.approx([rows_[0][1] for rows_ in expected], abs=1e-6)
    assert [len(top) for top in predicted["top"]] == [2, 2]
    assert client.get_logged_model(model_uri.split("/", 1)[1]).source_run_id == run_id


def test_a_run_that_fails_is_marked_failed_and_resume_finishes_it(registry, make_recipe, tmp_path, sqlite_store):
    store = sqlite_store(tmp_path / "store" / "runs.db")
    recipe = make_recipe(log={"backends": ["mlflow"], "mlflow": {"tracking_uri": store, "log_model": False}})
    with pytest.raises(RuntimeError, match="on purpose"):
        ft.run(recipe, FAST, quiet=True, callbacks=[FailAtStep(40)])
    assert mlflow.active_run() is None
    gc.collect()  # the dead run's logger is collected: its MLflow run is marked FAILED
    client = MlflowClient(store)
    _, run = only_run(client, "recipe")
    assert run.info.status == "FAILED"
    assert sorted(steps_and_values(client, run.info.run_id, "val/accuracy")) == [1, 2]
    # what was queued when it died is kept, up to the last step before the failure
    assert sorted(steps_and_values(client, run.info.run_id, "train/loss")) == list(range(5, 41, 5))

    ft.run(recipe, FAST, resume=Path(recipe["output"]["dir"]), quiet=True)
    experiment, resumed = only_run(client, "recipe")  # the same MLflow run, continued
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert experiment.artifact_location == (tmp_path / "store" / "mlartifacts").as_uri()  # beside the .db
    assert sorted(steps_and_values(client, run.info.run_id, "val/accuracy")) == [1, 2, 3]
    # the steps after the checkpoint (epoch 2, step 30) that the first attempt had logged come twice
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))
    assert steps == [5, 10, 15, 20, 25, 30, 35, 35, 40, 40, 45]
    assert "test_accuracy" in resumed.data.metrics


def test_a_bare_trainer_takes_the_logger_as_a_callback(tmp_path, sqlite_store):
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from ft.plugins.loggers import MlflowLogger

    store = sqlite_store(tmp_path / "bare.db")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0])).unsqueeze(1)
    logger = MlflowLogger(store, run_name="bare")
    trainer = ft.Trainer(nn.Linear(4, 1), TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:]),
                         loss_fn=nn.functional.mse_loss, quiet=True, callbacks=[logger], run_dir=tmp_path / "run",
                         train={"epochs": 2, "batch_size": 16, "progress": False, "log_every": 1},
                         optim={"lr": 0.05})
    fit = trainer.fit()
    client = MlflowClient(store)
    _, run = only_run(client, "ftkit")  # no recipe: the default experiment
    assert run.info.run_id == logger.run_id and run.info.status == "FINISHED" and run.info.run_name == "bare"
    assert run.data.params["optim.lr"] == "0.05" and run.data.params["train.batch_size"] == "16"
    assert run.data.tags["ftkit.backbone"] == "Linear" and run.data.tags["ftkit.strategy"] == "full"
    assert sorted(steps_and_values(client, run.info.run_id, "train/loss")) == list(range(1, 7))
    assert steps_and_values(client, run.info.run_id, "val/loss") == \
        pytest.approx({1: fit.history[0]["val_loss"], 2: fit.history[1]["val_loss"]})
    assert logger.model_uri is None and "ftkit.model_uri" not in run.data.tags  # no recipe to rebuild it from
    assert "metrics.jsonl" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_a_missing_library_names_the_extra(registry, make_recipe, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.raises(ft.FtError) as caught:
        ft.run(make_recipe(), FAST, quiet=True, loggers=["mlflow"])
    assert 'pip install "ftkit[mlflow]"' in caught.value.hint
    assert "logger 'mlflow' needs the mlflow package" in caught.value.message
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ft.FtError) as caught:
        ft.run(make_recipe(log={"backends": ["tensorboard"]}), FAST, quiet=True)
    assert 'pip install "ftkit[tensorboard]"' in caught.value.hint


def test_a_store_that_cannot_be_opened_is_named(registry, make_recipe, tmp_path):
    store = "sqlite:///" + str(tmp_path / "no" / "such" / "folder" / "runs.db")
    recipe = make_recipe(log={"backends": ["mlflow"], "mlflow": {"tracking_uri": store}})
    with pytest.raises(ft.FtError) as caught:
        ft.run(recipe, FAST, quiet=True)
    assert f"cannot open the MLflow tracking store {store}" in caught.value.message
    assert "tracking_uri" in caught.value.hint and not (tmp_path / "no").exists()


def test_ft_run_turns_loggers_on_from_the_recipe_and_from_log(toy_env, tmp_path, sqlite_store):
    """The CLI: [log] backends in the recipe file, plus --log mlflow configured by [log.mlflow]."""
    store = sqlite_store(tmp_path / "elsewhere" / "tracking.db")
    recipe = toy_recipe(tmp_path, log={"backends": ["tensorboard"], "mlflow": {
        "tracking_uri": store, "experiment": "toys", "run_name": "first", "log_model": False}})
    recipe["train"].update(epochs=1, log_every=5)
    path = write_recipe(tmp_path / "recipe.toml", recipe)
    out = subprocess.run([sys.executable, "-m", "ft.cli", "run", str(path), "--log", "mlflow"], capture_output=True,
                         text=True, env=toy_env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "run"
    assert f"ft: tensorboard: writing to {run_dir / 'tensorboard'}" in out.stdout
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    client = MlflowClient(store)
    _, run = only_run(client, "toys")
    assert run.info.run_name == "first" and run.info.status == "FINISHED"
    assert sorted(steps_and_values(client, run.info.run_id, "train/loss")) == [5, 10, 15]
    assert "ftkit.model_uri" not in run.data.tags  # log_model = false
    assert "recipe.toml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()  # only where asked
