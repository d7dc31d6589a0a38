"""l2sp: the penalty starts at 0 and grows; the backbone ends closer to its
pretrained weights than plain fine-tuning leaves it; no plain weight decay."""

from __future__ import annotations

import pytest
import torch

import ft

from freeze_testkit import FAST, Recorder


def _distance(rec: Recorder) -> float:
    """||w - w0|| over the backbone's parameters, start to end of the run."""
    start, end = rec.states[0], rec.states[-1]
    keys = [k for k in start if k.startswith("backbone.") and start[k].is_floating_point()
            and "running_" not in k]
    return torch.sqrt(sum(((end[k] - start[k]) ** 2).sum() for k in keys)).item()


def _terms(run) -> dict[str, float]:
    return {k: v.item() for k, v in run.trainer.strategy.terms(run.model).items()}


def test_l2sp_pulls_the_backbone_toward_its_pretrained_weights(registry, make_recipe, tmp_path):
    sections = dict(optim={"lr": 0.01}, data={"n_train": 96}, train={"epochs": 3, **FAST})
    plain = Recorder()
    ft.run(make_recipe(**sections, output={"dir": str(tmp_path / "full")}), quiet=True, callbacks=[plain])
    rec = Recorder(probe=_terms)
    result = ft.run(make_recipe(**sections, freeze={"strategy": "l2sp", "alpha": 0.1, "beta": 0.01},
                                output={"dir": str(tmp_path / "l2sp")}), quiet=True, callbacks=[rec])

    sp = [t["sp"] for t in rec.extra]
    assert sp[0] == 0.0  # w == w0 before the first step
    assert 0 < sp[1] < sp[2]  # (with AdamW it levels off where the pull balances the task gradient)
    assert rec.extra[0]["head"] > 0  # the head's L2 term is not anchored
    # same data, same steps: the anchored backbone moved clearly less
    assert _distance(rec) < 0.7 * _distance(plain)
    assert result.metrics["test"]["accuracy"] > 0.8
    strategy = result.summary["settings"]["strategy"]
    assert strategy == {"strategy": "l2sp", "alpha": 0.1, "beta": 0.01}


def test_l2sp_extra_loss_value_and_gradient(registry, make_recipe):
    recipe = ft.load_recipe(make_recipe(freeze={"strategy": "l2sp", "alpha": 0.5, "beta": 0.2}))
    model, bundle, strategy = ft.assemble(recipe)
    strategy.apply(model)
    strategy.prepare(model, bundle, torch.device("cpu"))
    head_w = model.head.body[1].weight
    assert strategy.extra_loss(model).item() == pytest.approx(0.1 * (head_w ** 2).sum().item())
    w = model.backbone.block1[0].weight
    with torch.no_grad():
        w.add_(1.0)  # every element 1 away from w0
    model.zero_grad()
    loss = strategy.extra_loss(model)
    assert loss.item() == pytest.approx(0.25 * w.numel() + 0.1 * (head_w ** 2).sum().item(), rel=1e-5)
    loss.backward()
    torch.testing.assert_close(w.grad, torch.full_like(w, 0.5))  # alpha * (w - w0)
    assert all(g.weight_decay == 0.0 for g in strategy.param_groups(model))


def test_l2sp_turns_plain_weight_decay_off_in_the_optimizer(registry, make_recipe):
    recipe = ft.load_recipe(make_recipe(freeze={"strategy": "l2sp"}, optim={"weight_decay": 0.05}))
    model, bundle, strategy = ft.assemble(recipe)
    trainer = ft.Trainer(model, bundle.train, strategy=strategy, train=recipe.train, optim=recipe.optim,
                         data=bundle, quiet=True)
    trainer.setup()
    assert all(g["weight_decay"] == 0.0 for g in trainer.optimizer.param_groups)
