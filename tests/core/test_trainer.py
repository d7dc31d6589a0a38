"""The shared trainer on the toy plugin: learning, accumulation, schedules,
stopping rules, exact resume."""

from __future__ import annotations


import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ft
from ft.meters import MEASURED
from ft.optim import schedule_fn
from ft.recipe import OptimSection


def test_loss_falls_and_accuracy_clears_bar(registry, make_recipe):
    result = ft.run(make_recipe(train={"epochs": 4}), quiet=True)
    history = result.summary and [r for r in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    import json

    losses = [json.loads(line)["train_loss"] for line in history]
    assert losses[-1] < losses[0] * 0.5
    assert result.metrics["test"]["accuracy"] >= 0.9
    assert result.metrics["test"]["macro_f1"] >= 0.9


def test_regression_task_reports_mae_rmse(registry, make_recipe):
    recipe = make_recipe(task={"type": "regression"}, train={"epochs": 6})
    result = ft.run(recipe, quiet=True)
    test = result.metrics["test"]
    assert set(test) >= {"mae", "rmse", "loss"}
    assert test["rmse"] < 0.6  # labels are 0..2 (+noise); predicting the mean gives ~0.82
    assert result.summary["monitor"] == "val_rmse"


def _toy_model_and_batches(n=30, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    x = torch.randn(n, 8)
    y = torch.randint(0, 3, (n,))
    return model, x, y


def test_gradient_accumulation_equals_large_batch():
    """4 micro-batches of 8, 8, 8, 6 give the gradient of one batch of 30."""
    model, x, y = _toy_model_and_batches()
    loss_fn = nn.functional.cross_entropy
    big = ft.Trainer(model, DataLoader(TensorDataset(x, y), batch_size=30), loss_fn=loss_fn,
                     train={"batch_size": 30, "progress": False}, optim={"name": "sgd", "lr": 1.0, "momentum": 0.0,
                                                                         "weight_decay": 0.0, "schedule": "constant"},
                     quiet=True)
    big.setup()
    snapshot = [p.detach().clone() for p in model.parameters()]
    big._step([(x, y)])
    delta_big = [p.detach() - s for p, s in zip(model.parameters(), snapshot)]

    with torch.no_grad():
        for p, s in zip(model.parameters(), snapshot):
            p.copy_(s)
    small = ft.Trainer(model, DataLoader(TensorDataset(x, y), batch_size=8), loss_fn=loss_fn,
                       train={"batch_size": 8, "grad_accum": 4, "progress": False},
                       optim={"name": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "schedule": "constant"},
                       quiet=True)
    small.setup()
    window = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 30, 8)]
    assert [len(b[1]) for b in window] == [8, 8, 8, 6]
    small._step(window)
    delta_small = [p.detach() - s for p, s in zip(model.parameters(), snapshot)]
    for a, b in zip(delta_big, delta_small):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # dividing by the number of micro-batches instead would be visibly wrong
    assert delta_big[0].abs().sum() > 0


def test_weight_decay_off_for_biases_and_norms(registry, make_recipe):
    recipe = ft.load_recipe(make_recipe(optim={"weight_decay": 0.05}))
    model, bundle, strategy = ft.assemble(recipe)
    trainer = ft.Trainer(model, bundle.train, bundle.val, train=recipe.train, optim=recipe.optim, strategy=strategy,
                         quiet=True)
    trainer.setup()
    for group in trainer.optimizer.param_groups:
        dims = {p.ndim for p in group["params"]}
        if group["weight_decay"] > 0:
            assert dims == {2}
        else:
            assert dims == {1}
    # full fine-tuning: layer groups that train alike share an optimizer group (decay / no decay)
    assert sorted(g["ft_group"] for g in trainer.optimizer.param_groups) == ["embed+block1+block2+head"] * 2


@pytest.mark.parametrize("freeze, expected", [
    ({"strategy": "full"}, {"embed+block1+block2", "head"}),  # the head has its own rate
    ({"strategy": "gradual_unfreeze", "every": 1}, {"embed", "block1", "block2", "head"}),  # rates change per group
])
def test_groups_with_their_own_learning_rates_stay_apart(registry, make_recipe, freeze, expected):
    recipe = ft.load_recipe(make_recipe(optim={"head_lr_mult": 10.0}, freeze=freeze))
    model, bundle, strategy = ft.assemble(recipe)
    trainer = ft.Trainer(model, bundle.train, bundle.val, train=recipe.train, optim=recipe.optim, strategy=strategy,
                         quiet=True)
    trainer.setup()
    assert {g["ft_group"] for g in trainer.optimizer.param_groups} == expected


def test_warmup_then_cosine_schedule():
    cfg = OptimSection(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    f = schedule_fn(cfg, total_steps=110)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(110) == pytest.approx(0.1)
    lin = schedule_fn(OptimSection(schedule="linear"), total_steps=100)
    assert lin(50) == pytest.approx(0.5)
    assert schedule_fn(OptimSection(schedule="constant"), 100)(77) == 1.0


def test_max_steps_and_clipping(registry, make_recipe):
    result = ft.run(make_recipe(train={"epochs": 5, "max_steps": 7, "clip_grad_norm": 0.5}), quiet=True)
    assert result.summary["steps"] == 7
    assert result.summary["stopped"] == "max_steps"


def test_clipping_bounds_the_update():
    model, x, y = _toy_model_and_batches()
    trainer = ft.Trainer(model, DataLoader(TensorDataset(x * 100, y), batch_size=30),
                         loss_fn=nn.functional.cross_entropy,
                         train={"clip_grad_norm": 0.01, "progress": False},
                         optim={"name": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0, "schedule": "constant"},
                         quiet=True)
    trainer.setup()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    trainer._step([(x * 100, y)])
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm().item() == pytest.approx(0.01, rel=1e-3)


def test_early_stopping_on_a_metric_that_cannot_improve(registry, make_recipe):
    # val accuracy hits 1.0 at once on well-separated blobs, so it cannot improve
    recipe = make_recipe(data={"spread": 0.2}, train={"epochs": 20, "patience": 2, "monitor": "val_accuracy"})
    result = ft.run(recipe, quiet=True)
    assert result.summary["stopped"] == "early_stopping"
    assert result.summary["epochs_run"] == result.summary["best_epoch"] + 2


def test_time_limit_stops_the_run(registry, make_recipe):
    result = ft.run(make_recipe(train={"epochs": 1000, "time_limit": 0.5}), quiet=True)
    assert result.summary["stopped"] == "time_limit"
    assert result.summary["epochs_run"] < 1000


def test_standalone_trainer_on_a_plain_module():
    """ft.Trainer works with any nn.Module and DataLoaders."""
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    model = nn.Linear(4, 1)
    loader = DataLoader(TensorDataset(x, y.unsqueeze(1)), batch_size=20, shuffle=True)
    trainer = ft.Trainer(model, loader, loader, loss_fn=nn.functional.mse_loss,
                         train={"epochs": 30, "progress": False}, optim={"lr": 0.1, "weight_decay": 0.0}, quiet=True)
    fit = trainer.fit()
    assert fit.history[-1]["val_loss"] < 1e-2 < fit.history[0]["val_loss"]
    assert fit.monitor == "val_loss"


class Crash(Exception):
    pass


class CrashAfterEpoch:
    """A callback that kills the run after an epoch (after its checkpoint)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def ft_epoch_end(self, run, epoch, metrics):
        if epoch == self.epoch:
            raise Crash(f"simulated crash after epoch {epoch}")


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_equals_unbroken_run(registry, make_recipe, tmp_path, ema_decay):
    """Interrupted after epoch 2 and resumed: same weights and metrics as an
    unbroken 4-epoch run, with random augmentation and dropout in play (and
    with a weight average, which the checkpoint must carry)."""
    sections = dict(data={"augment_noise": 0.3}, head={"dropout": 0.2},
                    optim={"schedule": "cosine", "warmup_steps": 3}, train={"epochs": 4, "ema_decay": ema_decay})
    unbroken = ft.run(make_recipe(**sections, output={"dir": str(tmp_path / "a")}), quiet=True)

    recipe = make_recipe(**sections, output={"dir": str(tmp_path / "b")})
    with pytest.raises(Crash):
        ft.run(recipe, quiet=True, callbacks=[CrashAfterEpoch(2)])
    resumed = ft.run(recipe, quiet=True, resume=True)

    a = unbroken.model.state_dict()
    b = resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.metrics == unbroken.metrics
    import json

    hist_a = [json.loads(l) for l in (unbroken.run_dir / "metrics.jsonl").read_text().splitlines()]
    hist_b = [json.loads(l) for l in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()]
    strip = lambda h: [{k: v for k, v in r.items() if k not in MEASURED} for r in h]
    assert strip(hist_a) == strip(hist_b)
    assert len(hist_b) == 4


def test_bf16_autocast_on_cpu_trains(registry, make_recipe):
    result = ft.run(make_recipe(train={"precision": "bf16", "epochs": 2}), quiet=True)
    assert result.summary["precision"] == "bf16"
    assert result.metrics["test"]["accuracy"] > 0.8


def test_fp16_on_cpu_is_a_clear_error(registry, make_recipe):
    with pytest.raises(ft.FtError, match="fp16\" needs a CUDA device"):
        ft.run(make_recipe(train={"precision": "fp16"}), quiet=True)


def test_mid_epoch_stop_then_resume_equals_unbroken_run(registry, make_recipe, tmp_path):
    """A time-limit stop lands mid-epoch; resuming continues at the next
    unseen batch and ends with the unbroken run's exact weights."""
    sections = dict(data={"augment_noise": 0.3, "n_train": 2000}, head={"dropout": 0.2},
                    optim={"schedule": "cosine"}, train={"epochs": 2})
    unbroken = ft.run(make_recipe(**sections, output={"dir": str(tmp_path / "a")}), quiet=True)

    # a limit this small stops right after the first optimizer step, deterministically
    stopped_sections = {**sections, "train": {"epochs": 2, "time_limit": 1e-9}}
    recipe = make_recipe(**stopped_sections, output={"dir": str(tmp_path / "b")})
    first = ft.run(recipe, quiet=True)
    assert first.summary["stopped"] == "time_limit"
    import json

    latest = json.loads((tmp_path / "b" / "checkpoints" / "latest.json").read_text())
    assert (latest["epoch"], latest["batch"]) == (0, 1)  # stopped inside the first epoch
    resumed = ft.run(recipe, overrides={"train.time_limit": 3600}, quiet=True, resume=True)
    assert resumed.summary["steps"] == unbroken.summary["steps"]
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "checkpoints" / "epoch-2" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "epoch-2" / "model.safetensors"))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_weight_average_is_the_ema_of_the_trajectory_and_what_validation_sees():
    """With train.ema_decay the trainer ends with (and validates) the
    exponential moving average of the weights an unaveraged run passes
    through, step by step, and training itself is unchanged."""
    decay = 0.8
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # no shuffling: both runs see the same batches
    trainers = []
    for ema in (decay, None):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3))
        trainers.append(ft.Trainer(model, loader, loader, loss_fn=nn.functional.cross_entropy,
                                   train={"epochs": 3, "progress": False, "ema_decay": ema},
                                   optim={"lr": 0.05, "schedule": "constant"}, quiet=True))
    averaged, plain = trainers
    plain.setup()
    tracked = [t for t in plain.model.parameters()] + [b for b in plain.model.buffers() if b.is_floating_point()]
    shadow = [t.detach().double().clone() for t in tracked]
    steps = []

    def fold_in(optimizer, args, kwargs):  # after each optimizer step, as the trainer does
        steps.append(None)
        d = min(decay, (1 + len(steps)) / (10 + len(steps)))
        for s, t in zip(shadow, tracked):
            s.mul_(d).add_(t.detach().double(), alpha=1 - d)

    plain.optimizer.register_step_post_hook(fold_in)
    plain.fit()
    fit = averaged.fit()
    assert len(steps) == 12
    ema_tracked = [t for t in averaged.model.parameters()] + [b for b in averaged.model.buffers()
                                                                 if b.is_floating_point()]
    for got, want, live in zip(ema_tracked, shadow, tracked):
        torch.testing.assert_close(got.detach().double(), want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ema_tracked[0], tracked[0])  # the average is not the last weights
    # the last validation figures are those of the averaged weights the model now holds
    assert averaged.evaluate(loader)["val_loss"] == pytest.approx(fit.history[-1]["val_loss"], rel=1e-6)


def test_resuming_without_the_average_the_run_started_with_is_a_clear_error(registry, make_recipe, tmp_path):
    recipe = make_recipe(train={"epochs": 2}, output={"dir": str(tmp_path / "run")})
    with pytest.raises(Crash):
        ft.run(recipe, quiet=True, callbacks=[CrashAfterEpoch(1)])
    # the recipe check refuses it first, naming the key ...
    with pytest.raises(ft.FtError, match=r"different recipe: train.ema_decay \(unset\) -> 0.9"):
        ft.run(recipe, overrides={"train.ema_decay": 0.9}, quiet=True, resume=True)
    # ... and a bare Trainer resuming the checkpoint gets the checkpoint's own word
    from ft.engine import assemble

    model, bundle, strategy = assemble(ft.load_recipe(recipe))
    trainer = ft.Trainer(model, bundle.train, bundle.val, train={"epochs": 2, "ema_decay": 0.9}, strategy=strategy,
                         run_dir=tmp_path / "run", quiet=True)
    with pytest.raises(ft.FtError, match="no weight average"):
        trainer.fit(resume=True)


def test_the_banner_warns_when_bf16_is_emulated_on_this_cpu(registry, make_recipe, capsys):
    from ft.parallel import cpu_has_native_bf16

    ft.run(make_recipe(train={"epochs": 1, "precision": "bf16"}), quiet=False)
    warned = "bf16 autocast is emulated here" in capsys.readouterr().out
    assert warned == (not cpu_has_native_bf16())
