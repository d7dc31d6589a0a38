"""The tensorboard logger: the event files, read back with TensorBoard's own
reader, hold exactly what the trainer reported."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")

import ft
from ft.plugins.loggers import TensorBoardLogger
from logger_testkit import FailAtStep, Reported, history
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

FAST = {"train.log_every": 5, "train.progress": False}


def read_events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def curve(events: EventAccumulator, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in events.Scalars(tag)}


def hparams(events: EventAccumulator) -> tuple[dict, list[str]]:
    """The recorded hparams (name -> value) and the metric tags they are paired with."""
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    values = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
              for k, v in start.session_start_info.hparams.items()}
    return values, [m.name.tag for m in experiment.experiment.metric_infos]


def test_a_recipe_run_writes_what_the_trainer_reported(registry, make_recipe):
    reported = Reported()
    recipe = make_recipe(freeze={"strategy": "discriminative_lr"}, log={"backends": ["tensorboard"]})
    result = ft.run(recipe, FAST, quiet=True, callbacks=[reported])
    folder = result.run_dir / "tensorboard"
    events = read_events(folder)

    # every ft_step_end: the loss since the last one, the head's lr and every group's, at that step
    assert sorted(reported.steps) == list(range(5, 46, 5))
    assert curve(events, "train/loss") == pytest.approx({s: m["train_loss"] for s, m in reported.steps.items()})
    assert curve(events, "lr") == pytest.approx({s: m["lr"] for s, m in reported.steps.items()})
    groups = [k[3:] for k in reported.steps[5] if k.startswith("lr_")]
    assert set(groups) == {"embed", "block1", "block2", "head"}
    for group in groups:
        assert curve(events, f"lr/{group}") == pytest.approx({s: m[f"lr_{group}"] for s, m in reported.steps.items()})
    assert curve(events, "lr/embed")[5] < curve(events, "lr/head")[5]  # discriminative rates, seen as recorded

    # every epoch, at the optimizer step it ended on: metrics.jsonl's figures
    rows = history(result.run_dir)
    at_step = {row["step"]: row for row in rows}
    assert sorted(at_step) == [15, 30, 45]
    assert curve(events, "epoch") == {s: row["epoch"] for s, row in at_step.items()}
    assert curve(events, "train/epoch_loss") == pytest.approx({s: r["train_loss"] for s, r in at_step.items()})
    for name in ("loss", "accuracy", "macro_f1"):
        assert curve(events, f"val/{name}") == pytest.approx({s: r[f"val_{name}"] for s, r in at_step.items()})
    for name in ("examples_per_s", "data_wait", "peak_mem_mb"):
        assert curve(events, f"perf/{name}") == pytest.approx({s: r[name] for s, r in at_step.items()})

    # at the end: the final evaluation, the recipe as hparams against it, the model card
    final = result.summary["metrics"]
    assert curve(events, "final/test_accuracy") == pytest.approx({45: final["test"]["accuracy"]})
    assert curve(events, "final/val_loss") == pytest.approx({45: final["val"]["loss"]})
    values, metric_tags = hparams(events)
    assert values["optim.lr"] == pytest.approx(0.01)
    assert values["freeze.strategy"] == "discriminative_lr"
    assert values["train.epochs"] == 3 and values["data.format"] == "toy_blobs"
    assert values["log.backends"] == '["tensorboard"]'  # a list, as its JSON text
    assert "final/test_accuracy" in metric_tags and "final/val_accuracy" in metric_tags
    (card,) = events.Tensors("model_card/text_summary")
    assert card.tensor_proto.string_val[0].decode() == (result.run_dir / "MODEL_CARD.md").read_text()
    assert card.step == 45
    assert len(list(folder.iterdir())) == 1  # one event file: hparams are in this run, not a sub-folder


def test_dir_option_gives_each_run_a_folder_under_it(registry, make_recipe, tmp_path):
    recipe = make_recipe(log={"backends": ["tensorboard"], "tensorboard": {"dir": str(tmp_path / "tb")}})
    result = ft.run(recipe, {**FAST, "train.epochs": 1}, quiet=True)
    assert not (result.run_dir / "tensorboard").exists()
    events = read_events(tmp_path / "tb" / result.run_dir.name)
    assert sorted(curve(events, "train/loss")) == [5, 10, 15]


def test_a_resumed_run_shows_every_step_once(registry, make_recipe):
    """A run dies at step 40, after its last checkpoint (step 30); the
    resumed run logs steps 35-45 again: TensorBoard shows the second life's."""
    recipe = make_recipe(log={"backends": ["tensorboard"]})
    with pytest.raises(RuntimeError, match="on purpose"):
        ft.run(recipe, FAST, quiet=True, callbacks=[FailAtStep(40)])
    gc.collect()  # the dead run's logger closes its file
    run_dir = Path(recipe["output"]["dir"])
    reported = Reported()
    ft.run(recipe, FAST, resume=run_dir, quiet=True, callbacks=[reported])
    events = read_events(run_dir / "tensorboard")
    assert len(list((run_dir / "tensorboard").iterdir())) == 2
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == list(range(5, 46, 5))
    assert {e.step: e.value for e in losses if e.step > 30} == \
        pytest.approx({s: m["train_loss"] for s, m in reported.steps.items()})
    assert sorted(curve(events, "val/accuracy")) == [15, 30, 45]


def test_a_bare_trainer_takes_the_logger_as_a_callback(tmp_path):
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0])).unsqueeze(1)
    logger = TensorBoardLogger(tmp_path / "tb")
    trainer = ft.Trainer(nn.Linear(4, 1), TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:]),
                         loss_fn=nn.functional.mse_loss, quiet=True, callbacks=[logger],
                         train={"epochs": 2, "batch_size": 16, "progress": False, "log_every": 1},
                         optim={"lr": 0.05})
    fit = trainer.fit()
    assert logger.logdir.parent == tmp_path / "tb" and logger.logdir.name.startswith("tensorboard-")
    events = read_events(logger.logdir)
    assert sorted(curve(events, "train/loss")) == list(range(1, 7))
    assert curve(events, "val/loss") == pytest.approx({3: fit.history[0]["val_loss"], 6: fit.history[1]["val_loss"]})
    values, metric_tags = hparams(events)  # no recipe: the trainer's own train/optim settings
    assert values["optim.lr"] == pytest.approx(0.05) and values["train.batch_size"] == 16
    assert "final/val_loss" in metric_tags
    assert "model_card/text_summary" not in events.Tags()["tensors"]  # no run directory, no card


def test_a_folder_that_cannot_be_written_is_named(registry, make_recipe, tmp_path):
    (tmp_path / "a_file").write_text("")
    recipe = make_recipe(log={"backends": ["tensorboard"], "tensorboard": {"dir": str(tmp_path / "a_file")}})
    with pytest.raises(ft.FtError) as caught:
        ft.run(recipe, FAST, quiet=True)
    assert caught.value.where == str(tmp_path / "a_file" / "run")
    assert "cannot write TensorBoard's event files" in caught.value.message and "dir" in caught.value.hint
