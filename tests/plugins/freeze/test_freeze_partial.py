"""full, linear_probe, freeze_bottom, bitfit: after a real run, frozen weights
are bit-identical and trainable ones moved; BatchNorm statistics of frozen
groups do not drift; freeze_bottom fails loudly when asked too much."""

from __future__ import annotations

import math

import pytest
from torch import nn

import ft
from ft.contracts import Backbone, groups_by_prefix
from ft.model import FtModel

from freeze_testkit import FAST, Recorder, changed, group_of

GROUPS = ("embed", "block1", "block2", "head")
BN_BUFFERS = ("backbone.embed.1.running_mean", "backbone.embed.1.running_var", "backbone.embed.1.num_batches_tracked")


def may_train(strategy: str, key: str) -> bool:
    """Which parameters the strategy trains (toy backbone)."""
    group = group_of(key)
    return {
        "full": True,
        "linear_probe": group == "head",
        "freeze_bottom": group != "embed",
        "bitfit": group == "head" or key.endswith("bias"),
    }[strategy]


@pytest.mark.parametrize("strategy,options", [
    ("full", {}), ("linear_probe", {}), ("freeze_bottom", {"n": 1}), ("bitfit", {}),
])
def test_frozen_weights_bit_identical_trainable_ones_move(registry, make_recipe, strategy, options):
    rec = Recorder()
    recipe = make_recipe(freeze={"strategy": strategy, **options}, optim={"weight_decay": 0.05},
                         data={"n_train": 96}, train={"epochs": 2, **FAST})
    result = ft.run(recipe, quiet=True, callbacks=[rec])
    start, end = rec.states[0], rec.states[-1]
    params = {name for name, _ in result.model.named_parameters()}
    for key in params:
        if may_train(strategy, key):
            # a bias right before BatchNorm gets an exactly-cancelling gradient, so only matrices must move
            if start[key].ndim > 1:
                assert changed(start, end, key), f"{strategy}: trainable {key} did not move"
        else:
            assert not changed(start, end, key), f"{strategy}: frozen {key} moved"
    moved_groups = {group_of(k) for k in params if changed(start, end, k)}
    expected = {group_of(k) for k in params if may_train(strategy, k)}
    assert moved_groups == expected
    if strategy in ("linear_probe", "freeze_bottom"):  # embed is frozen: its BatchNorm statistics too
        assert all(not changed(start, end, k) for k in BN_BUFFERS)
    else:
        assert changed(start, end, "backbone.embed.1.running_mean")
    counts = {row["group"]: row["trainable"] for row in result.summary["params"]["groups"]}
    if strategy == "bitfit":
        biases = sum(p.numel() for n, p in result.model.backbone.named_parameters() if n.endswith("bias"))
        assert sum(counts[g] for g in GROUPS[:3]) == biases
    assert math.isfinite(result.metrics["test"]["loss"])


def test_freeze_bottom_keeps_frozen_batchnorm_in_eval_mode(registry, make_recipe):
    recipe = ft.load_recipe(make_recipe(freeze={"strategy": "freeze_bottom", "n": 1}))
    model, _, strategy = ft.assemble(recipe)
    strategy.apply(model)
    strategy.set_train_mode(model, epoch=0)
    assert not model.backbone.embed[1].training  # frozen group's BatchNorm
    assert model.backbone.embed[0].training and model.backbone.block1.training and model.head.training
    assert not any(p.requires_grad for p in model.backbone.embed.parameters())
    assert all(p.requires_grad for p in model.backbone.block1.parameters())


def test_freeze_bottom_with_lr_decay_sets_optimizer_lrs(registry, make_recipe):
    recipe = ft.load_recipe(make_recipe(freeze={"strategy": "freeze_bottom", "n": 1, "lr_decay": 0.5},
                                        optim={"lr": 0.01}))
    model, bundle, strategy = ft.assemble(recipe)
    trainer = ft.Trainer(model, bundle.train, strategy=strategy, train=recipe.train, optim=recipe.optim, quiet=True)
    trainer.setup()
    lrs = {g["ft_group"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs == pytest.approx({"block1": 0.01 * 0.25, "block2": 0.01 * 0.5, "head": 0.01})


@pytest.mark.parametrize("n", [3, 7])
def test_freeze_bottom_n_too_large_is_a_clear_error(registry, make_recipe, n):
    with pytest.raises(ft.FtError) as err:
        ft.run(make_recipe(freeze={"strategy": "freeze_bottom", "n": n}), quiet=True)
    text = str(err.value)
    assert "freeze.n" in text and "freeze_bottom" in text
    assert "3 layer groups: embed, block1, block2" in text
    assert "n <= 2" in text and "linear_probe" in text


class _AffineFreeBN(Backbone):
    """Linear -> BatchNorm(affine=False) in group a; Linear in group b."""

    def __init__(self):
        super().__init__()
        self.feature_dim = 4
        self.a = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, affine=False))
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        return self.b(self.a(x))

    def layer_groups(self):
        return groups_by_prefix(self, [("a", ["a"]), ("b", ["b"])])


def test_parameterless_batchnorm_belongs_to_the_layer_it_normalises(registry):
    from ft.plugins.freeze._split import norm_layers_by_group, split_model

    model = FtModel(_AffineFreeBN(), nn.Linear(4, 2), ft.TaskInfo("classification", 2))
    by_group = norm_layers_by_group(split_model(model, "test"))
    assert by_group == {"a": [model.backbone.a[1]], "b": []}


def test_layer_groups_that_miss_parameters_are_rejected(registry):
    class Leaky(_AffineFreeBN):
        def layer_groups(self):
            return [ft.LayerGroup("a", list(self.a.parameters()))]  # forgets b

    model = FtModel(Leaky(), nn.Linear(4, 2), ft.TaskInfo("classification", 2))
    from ft.plugins.freeze.partial import FreezeBottomOptions, FreezeBottomStrategy

    with pytest.raises(ft.FtError, match=r"leaves 2 parameter\(s\) out of its layer groups \(b.weight, b.bias\)"):
        FreezeBottomStrategy(FreezeBottomOptions(n=1)).apply(model)


def test_layerwise_strategies_need_several_layer_groups(registry):
    from ft.plugins.freeze.layerwise import DiscriminativeLrOptions, DiscriminativeLrStrategy
    from ft.plugins.freeze.schedules import GradualUnfreezeOptions, GradualUnfreezeStrategy, LpFtOptions, LpFtStrategy

    class OneGroup(Backbone):  # the default layer_groups(): one group named "backbone"
        feature_dim = 4

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

    model = FtModel(OneGroup(), nn.Linear(4, 2), ft.TaskInfo("classification", 2))
    for strategy, where in ((DiscriminativeLrStrategy(DiscriminativeLrOptions()), "freeze.strategy = 'discriminative_lr'"),
                            (GradualUnfreezeStrategy(GradualUnfreezeOptions()), "freeze.strategy = 'gradual_unfreeze'")):
        with pytest.raises(ft.FtError, match="OneGroup has 1 layer group: backbone") as err:
            strategy.apply(model)
        assert where in str(err.value) and "layer_groups()" in str(err.value)
    lp_ft = LpFtStrategy(LpFtOptions(lr_decay=0.5))
    lp_ft.apply(model)  # lp_ft itself works on one group; only its lr_decay needs several
    with pytest.raises(ft.FtError, match=r"freeze.lr_decay \(strategy 'lp_ft'\)"):
        lp_ft.param_groups(model)


class _Recurrent(Backbone):
    """An LSTM (biases named bias_ih_l0 / bias_hh_l0 / ..._reverse) and a bias-free projection."""

    feature_dim = 4

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 2, num_layers=2, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(4, 4, bias=False)

    def forward(self, x):
        return self.proj(self.lstm(x)[0].mean(1))


def test_bitfit_trains_recurrent_layers_biases(registry):
    from ft.plugins.freeze.basic import NoOptions
    from ft.plugins.freeze.partial import BitFitStrategy

    model = FtModel(_Recurrent(), nn.Linear(4, 2), ft.TaskInfo("classification", 2))
    BitFitStrategy(NoOptions()).apply(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lstm_biases = {f"backbone.lstm.bias_{kind}_l{layer}{suffix}" for kind in ("ih", "hh") for layer in (0, 1)
                   for suffix in ("", "_reverse")}
    assert trainable == lstm_biases | {"head.weight", "head.bias"}
