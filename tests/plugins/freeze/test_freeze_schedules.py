"""gradual_unfreeze, lp_ft and discriminative_lr: multipliers over time, the
optimizer's actual per-group learning rates, and frozen groups that stay
bit-identical (BatchNorm statistics included) until their turn."""

from __future__ import annotations

import warnings

import pytest
import torch

import ft
from ft.plugins.freeze.schedules import LpFtOptions, LpFtStrategy

from freeze_testkit import FAST, Recorder, changed, group_of

LR = 0.01


def test_adamw_and_sgd_with_lr_zero_leave_parameters_bit_identical():
    """The premise of freezing by learning rate: with weight decay, zero and
    non-zero gradients, in every AdamW implementation available on CPU."""
    for make in (lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=0.05, foreach=True),
                 lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=0.05, foreach=False),
                 lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=0.05, fused=True),
                 lambda ps: torch.optim.SGD(ps, lr=LR, momentum=0.9, nesterov=True, weight_decay=0.05)):
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(16, 8)), torch.nn.Parameter(torch.randn(8))]
        before = [p.detach().clone() for p in params]
        opt = make(params)
        for group in opt.param_groups:
            group["lr"] = 0.0
        for step in range(4):
            for p in params:
                p.grad = torch.randn_like(p) if step % 2 else torch.zeros_like(p)
            opt.step()
        assert all(torch.equal(a, b) for a, b in zip(params, before)), opt


def _state_cleared(run) -> dict[str, bool]:
    """Per ft_group: True if none of its parameters has optimizer state."""
    out: dict[str, bool] = {}
    for group in run.trainer.optimizer.param_groups:
        empty = all(p not in run.trainer.optimizer.state for p in group["params"])
        out[group["ft_group"]] = out.get(group["ft_group"], True) and empty
    return out


def test_gradual_unfreeze_groups_stay_identical_until_their_milestone(registry, make_recipe):
    rec = Recorder(probe=_state_cleared)
    recipe = make_recipe(freeze={"strategy": "gradual_unfreeze"}, optim={"lr": LR, "weight_decay": 0.05},
                         data={"n_train": 64}, train={"epochs": 4, **FAST})
    result = ft.run(recipe, quiet=True, callbacks=[rec])
    milestone = {"head": 0, "block2": 1, "block1": 2, "embed": 3}
    params = [name for name, _ in result.model.named_parameters()]
    for k in range(1, 5):  # after epoch k, groups with milestone < k have trained
        for key in params:
            trained = k > milestone[group_of(key)]
            if not trained:
                assert not changed(rec.states[0], rec.states[k], key), f"{key} moved before its milestone (epoch {k})"
            elif rec.states[0][key].ndim > 1:
                assert changed(rec.states[0], rec.states[k], key), f"{key} did not move after its milestone"
        bn_moved = changed(rec.states[0], rec.states[k], "backbone.embed.1.running_mean")
        assert bn_moved == (k > milestone["embed"]), f"embed BatchNorm statistics after epoch {k}"
    for epoch in range(4):
        assert rec.lrs[epoch] == {g: (LR if epoch >= m else 0.0) for g, m in milestone.items()}, epoch
    # a group that just opened starts without the moments it gathered while frozen
    assert rec.extra[1]["block2"] and rec.extra[2]["block1"] and rec.extra[3]["embed"]
    assert not rec.extra[1]["head"] and not rec.extra[2]["block2"]
    strategy = ft.load_run(result.run_dir).strategy
    assert [strategy.backbone_frozen(e) for e in range(3)] == [True, False, False]


def test_gradual_unfreeze_every_two_epochs(registry, make_recipe):
    recipe = ft.load_recipe(make_recipe(freeze={"strategy": "gradual_unfreeze", "every": 2}))
    model, _, strategy = ft.assemble(recipe)
    strategy.apply(model)
    progress = lambda epoch: ft.Progress(step=epoch * 10, epoch=epoch, steps_per_epoch=10)
    table = {e: [strategy.lr_multiplier(g, progress(e)) for g in ("embed", "block1", "block2", "head")]
             for e in range(7)}
    assert table == {0: [0, 0, 0, 1], 1: [0, 0, 0, 1], 2: [0, 0, 1, 1], 3: [0, 0, 1, 1],
                     4: [0, 1, 1, 1], 5: [0, 1, 1, 1], 6: [1, 1, 1, 1]}
    assert [strategy.backbone_frozen(e) for e in range(3)] == [True, True, False]


def test_lp_ft_phase_boundary_is_exact():
    strategy = LpFtStrategy(LpFtOptions(probe_epochs=2, ft_lr_mult=0.1, head_ft_lr_mult=0.5))
    at = lambda step: ft.Progress(step=step, epoch=step // 5, steps_per_epoch=5)
    assert [strategy.lr_multiplier("block1", at(s)) for s in (0, 9, 10, 11)] == [0.0, 0.0, 0.1, 0.1]
    assert [strategy.lr_multiplier("head", at(s)) for s in (0, 9, 10, 11)] == [1.0, 1.0, 0.5, 0.5]
    assert [strategy.backbone_frozen(e) for e in range(3)] == [True, True, False]


def test_lp_ft_run_probes_then_fine_tunes(registry, make_recipe):
    rec = Recorder(probe=_state_cleared)
    recipe = make_recipe(freeze={"strategy": "lp_ft", "probe_epochs": 2, "head_ft_lr_mult": 0.5},
                         optim={"lr": LR}, data={"n_train": 64}, train={"epochs": 4, **FAST})
    result = ft.run(recipe, quiet=True, callbacks=[rec])
    backbone = [k for k in rec.states[0] if k.startswith("backbone.")]  # parameters and BatchNorm buffers
    for k in (1, 2):
        assert not any(changed(rec.states[0], rec.states[k], key) for key in backbone), f"backbone moved in probe {k}"
    assert changed(rec.states[0], rec.states[1], "head.body.1.weight")
    assert all(changed(rec.states[2], rec.states[3], key) for key in backbone if rec.states[0][key].ndim > 1)
    probe = {"embed": 0.0, "block1": 0.0, "block2": 0.0, "head": LR}
    tune = {"embed": LR * 0.1, "block1": LR * 0.1, "block2": LR * 0.1, "head": LR * 0.5}
    assert [rec.lrs[e] for e in range(4)] == [probe, probe, pytest.approx(tune), pytest.approx(tune)]
    assert rec.extra[2]["embed"] and not rec.extra[2]["head"]  # backbone state reset at the boundary, head kept
    assert result.summary["settings"]["strategy"] == {"strategy": "lp_ft", "probe_epochs": 2, "ft_lr_mult": 0.1,
                                                      "head_ft_lr_mult": 0.5, "lr_decay": None}


def _initial_lrs(make_recipe, freeze: dict, advance_epochs: int = 0) -> dict[str, float]:
    """The optimizer's per-group LRs after setup (and ``advance_epochs`` of scheduler steps)."""
    recipe = ft.load_recipe(make_recipe(freeze=freeze, optim={"lr": LR}))
    model, bundle, strategy = ft.assemble(recipe)
    trainer = ft.Trainer(model, bundle.train, strategy=strategy, train=recipe.train, optim=recipe.optim, quiet=True)
    trainer.setup()
    with warnings.catch_warnings():  # stepping the schedule alone is the point here
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
        for _ in range(advance_epochs * trainer.steps_per_epoch):
            trainer.scheduler.step()
    lrs: dict[str, float] = {}
    for group in trainer.optimizer.param_groups:
        assert lrs.setdefault(group["ft_group"], group["lr"]) == group["lr"]
    return lrs


@pytest.mark.parametrize("freeze,ratio", [
    ({"strategy": "discriminative_lr"}, 1 / 2.6),
    ({"strategy": "discriminative_lr", "factor": 4.0}, 1 / 4.0),
    ({"strategy": "discriminative_lr", "mode": "layerwise"}, 0.75),
    ({"strategy": "discriminative_lr", "mode": "layerwise", "decay": 0.5}, 0.5),
])
def test_discriminative_lr_decays_from_the_head_down(registry, make_recipe, freeze, ratio):
    lrs = _initial_lrs(make_recipe, freeze)
    assert lrs == pytest.approx({"head": LR, "block2": LR * ratio, "block1": LR * ratio ** 2,
                                 "embed": LR * ratio ** 3}, rel=1e-12)


def test_lr_decay_combines_with_gradual_unfreeze_and_lp_ft(registry, make_recipe):
    gu = {"strategy": "gradual_unfreeze", "lr_decay": 0.5}
    assert _initial_lrs(make_recipe, gu) == {"embed": 0.0, "block1": 0.0, "block2": 0.0, "head": LR}
    assert _initial_lrs(make_recipe, gu, advance_epochs=3) == pytest.approx(
        {"embed": LR / 8, "block1": LR / 4, "block2": LR / 2, "head": LR})
    lp = {"strategy": "lp_ft", "probe_epochs": 1, "lr_decay": 0.5}
    assert _initial_lrs(make_recipe, lp, advance_epochs=1) == pytest.approx(
        {"embed": LR * 0.1 / 8, "block1": LR * 0.1 / 4, "block2": LR * 0.1 / 2, "head": LR * 0.1})


def test_discriminative_lr_rejects_an_option_its_mode_ignores(registry, make_recipe):
    with pytest.raises(ft.RecipeError, match="'decay' is only used with mode = 'layerwise'"):
        ft.load_recipe(make_recipe(freeze={"strategy": "discriminative_lr", "decay": 0.5}))
    with pytest.raises(ft.RecipeError, match="freeze.factor"):
        ft.load_recipe(make_recipe(freeze={"strategy": "discriminative_lr", "factor": 0.5}))
