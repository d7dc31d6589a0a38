"""One event system: ``Trainer.fit`` fires every lifecycle event, to the
registered plugins first and then to the Python callbacks, for a bare
trainer as for ``ft.run``; a callback method named like a hook that is not
one is refused when the trainer is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import ft

SMALL = {"n_train": 48, "n_val": 16, "n_test": 16}


class Log:
    """Records every lifecycle event as ``(who, event, detail)`` in one shared list."""

    def __init__(self, who: str, events: list):
        self.who, self.events = who, events

    @ft.hookimpl
    def ft_run_start(self, run):
        self.events.append((self.who, "start", None))

    @ft.hookimpl
    def ft_checkpoint_saved(self, run, path, epoch):
        assert Path(path).is_dir()
        self.events.append((self.who, "checkpoint", epoch))

    @ft.hookimpl
    def ft_epoch_end(self, run, epoch, metrics):
        self.events.append((self.who, "epoch", epoch))

    @ft.hookimpl
    def ft_run_end(self, run, summary):
        self.events.append((self.who, "end", summary))


def bare_trainer(tmp_path: Path, **kwargs) -> ft.Trainer:
    """A bare ft.Trainer: a linear model on a regression TensorDataset, 2 epochs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0])).unsqueeze(1)
    return ft.Trainer(nn.Linear(4, 1), TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:]),
                      loss_fn=nn.functional.mse_loss, train={"epochs": 2, "batch_size": 16, "progress": False},
                      optim={"lr": 0.05}, run_dir=tmp_path / "run", quiet=True, **kwargs)


def test_bare_trainer_fires_every_event_to_plugins_then_callbacks(registry, tmp_path):
    events: list = []
    registry.register(Log("plugin", events), "logger")
    fit = bare_trainer(tmp_path, callbacks=[Log("callback", events)]).fit()
    expected = ["start", ("checkpoint", 1), ("epoch", 1), ("checkpoint", 2), ("epoch", 2), "end"]
    seen = [e if d is None or e == "end" else (e, d) for _, e, d in events]
    # each event reaches the plugin, then the callback, before the next event fires
    assert seen == [x for x in expected for _ in range(2)]
    assert [who for who, _, _ in events] == ["plugin", "callback"] * len(expected)
    # ft_run_end gets the fit's summary: the last epoch's figures by split
    summary = events[-1][2]
    assert summary is fit.summary and summary["epochs_run"] == 2 and summary["stopped"] == "epochs"
    assert summary["metrics"]["val"]["loss"] == fit.history[-1]["val_loss"]
    assert summary["metrics"]["train"]["loss"] == fit.history[-1]["train_loss"]
    assert (tmp_path / "run" / "checkpoints" / "epoch-2").is_dir()


def test_ft_run_fires_run_end_once_with_the_run_summary(registry, make_recipe):
    events: list = []
    registry.register(Log("plugin", events), "logger")
    result = ft.run(make_recipe(data=SMALL, train={"epochs": 2}), quiet=True, callbacks=[Log("callback", events)])
    ends = [(who, d) for who, e, d in events if e == "end"]
    assert [who for who, _ in ends] == ["plugin", "callback"]
    for _, summary in ends:  # the engine's summary: the final evaluation on every split, the components
        assert summary is result.summary and set(summary["metrics"]) == {"val", "test"}
        assert summary["components"][0]["name"] == "toy_mlp"
    assert [e for who, e, _ in events if who == "plugin"][:3] == ["start", "checkpoint", "epoch"]


@pytest.mark.parametrize("method, suggestion", [("on_epoch_end", "did you mean 'ft_epoch_end'"),
                                                ("ft_epoch_ends", "did you mean 'ft_epoch_end'"),
                                                ("ft_run_finished", "the lifecycle hooks are ft_run_start")])
def test_a_misnamed_callback_method_is_refused_when_the_trainer_is_built(tmp_path, method, suggestion):
    Misnamed = type("Misnamed", (), {method: lambda self, **kw: None, "helper": lambda self: None})
    with pytest.raises(ft.FtError) as err:
        bare_trainer(tmp_path, callbacks=[Misnamed()])
    text = str(err.value)
    assert text.startswith(f"callback Misnamed: method {method!r} is not a lifecycle hook")
    assert suggestion in text and "ft_run_start, ft_step_end, ft_checkpoint_saved, ft_epoch_end, ft_run_end" in text
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_registration_hook_on_a_callback_says_register_it(tmp_path):
    class Provider:
        def ft_backbones(self):
            return []

    with pytest.raises(ft.FtError, match="(?s)registration hook.*ft.register_plugin"):
        bare_trainer(tmp_path, callbacks=[Provider()])


def test_a_bare_trainers_failing_plugin_hook_is_named_with_how_to_resume(registry, tmp_path):
    class Broken:
        @ft.hookimpl
        def ft_epoch_end(self, run, epoch, metrics):
            raise RuntimeError("the dashboard went away")

    registry.register(Broken(), "dashboard")
    with pytest.raises(ft.PluginError) as err:
        bare_trainer(tmp_path).fit()
    text = str(err.value)
    assert text.startswith("plugin dashboard (distribution (in-process)): its ft_epoch_end hook failed: "
                           "RuntimeError: the dashboard went away")
    assert "Trainer.fit(resume=True)" in text and "ft.unregister_plugin('dashboard')" in text


def test_a_failing_callback_keeps_its_own_exception(registry, tmp_path):
    class Crash(Exception):
        pass

    class Crashing:
        def ft_run_start(self, run):
            raise Crash("stop here")

    with pytest.raises(Crash, match="stop here"):
        bare_trainer(tmp_path, callbacks=[Crashing()]).fit()


class StepLog:
    """A callback that records ft_step_end."""

    def __init__(self):
        self.steps: list[tuple[int, dict]] = []

    def ft_step_end(self, run, step, metrics):
        self.steps.append((step, dict(metrics)))


def test_step_end_fires_every_log_every_steps_with_the_loss_since_the_last(tmp_path):
    log = StepLog()
    trainer = bare_trainer(tmp_path, callbacks=[log])
    trainer.cfg.log_every = 2
    fit = trainer.fit()
    # 48 examples / 16 = 3 steps an epoch, 2 epochs: steps 2, 4, 6
    assert [s for s, _ in log.steps] == [2, 4, 6]
    assert [m["epoch"] for _, m in log.steps] == [pytest.approx(2 / 3, abs=1e-3), pytest.approx(4 / 3, abs=1e-3),
                                                  2.0]
    first = log.steps[0][1]
    assert set(first) == {"step", "epoch", "train_loss", "lr", "lr_all"} and first["lr"] == first["lr_all"]  # one group
    # steps 5-6 (the last two of epoch 2) and step 4 (the first of it): together the epoch's mean loss
    epoch2 = fit.history[1]["train_loss"]
    n4, n56 = 16, 32
    assert (log.steps[1][1]["train_loss"] * n4 + log.steps[2][1]["train_loss"] * n56) / 48 == \
        pytest.approx(epoch2, rel=1e-5)


def test_nobody_listening_means_no_step_events(tmp_path, monkeypatch):
    trainer = bare_trainer(tmp_path)
    trainer.cfg.log_every = 1
    called = []
    monkeypatch.setattr(trainer, "_step_end", lambda *a: called.append(a))
    trainer.fit()
    assert called == []


def test_a_handler_can_end_the_run_after_an_epoch(tmp_path):
    class Pruner:
        def ft_epoch_end(self, run, epoch, metrics):
            if epoch == 1:
                run.trainer.request_stop("pruned")

    fit = bare_trainer(tmp_path, callbacks=[Pruner()]).fit()
    assert fit.stopped == "pruned" and len(fit.history) == 1 and fit.note is None
    assert fit.summary["stopped"] == "pruned"
