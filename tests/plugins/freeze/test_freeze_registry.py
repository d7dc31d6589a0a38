"""Every built-in strategy is selectable by name from a recipe and trains;
describe() reports its options; option mistakes are caught with the recipe."""

from __future__ import annotations

import math

import pytest

import ft

from freeze_testkit import FAST

#: strategy -> options it needs on the toy recipe (3 backbone groups, no unlabeled split)
SMOKE = {
    "full": {},
    "linear_probe": {},
    "freeze_bottom": {"n": 2, "lr_decay": 0.8},
    "gradual_unfreeze": {"lr_decay": 0.5},
    "discriminative_lr": {"mode": "layerwise"},
    "lp_ft": {"probe_epochs": 1, "lr_decay": 0.9},
    "bitfit": {},
    "lora": {"r": 2, "exclude": ["embed.0"]},
    "l2sp": {"alpha": 0.1},
    "adabn": {"source": "val", "base": "linear_probe"},
}


def test_every_builtin_strategy_has_a_smoke_case(registry):
    assert set(registry.names("ft_freeze_strategies")) >= set(SMOKE)
    builtin = {n for n in registry.names("ft_freeze_strategies")
               if registry.provider("ft_freeze_strategies", n) == "freeze"}
    assert builtin == set(SMOKE)


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_strategy_runs_from_a_recipe(registry, make_recipe, name):
    recipe = make_recipe(freeze={"strategy": name, **SMOKE[name]}, data={"n_train": 48, "n_val": 24, "n_test": 24},
                         train={"epochs": 2, **FAST})
    result = ft.run(recipe, quiet=True)
    losses = [row["train_loss"] for row in _history(result)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert math.isfinite(result.metrics["test"]["loss"])
    described = result.summary["settings"]["strategy"]
    assert described["strategy"] == name
    assert {k: described[k] for k in SMOKE[name]} == SMOKE[name]  # describe() reports the options
    assert result.summary["params"]["trainable"] > 0


def _history(result) -> list[dict]:
    import json

    return [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("freeze,key,message", [
    ({"strategy": "freeze_bottom", "n": 1, "lr_decy": 0.5}, "freeze.lr_decy",
     "unknown key for freeze 'freeze_bottom' (plugin freeze) — did you mean 'lr_decay'?"),
    ({"strategy": "gradual_unfreeze", "n": 1}, "freeze.n", "unknown key for freeze 'gradual_unfreeze'"),
    ({"strategy": "freeze_bottom"}, "freeze.n", "missing (required)"),
    ({"strategy": "freeze_bottom", "n": 0}, "freeze.n", "greater than or equal to 1"),
    ({"strategy": "lp_ft", "lr_decay": 1.5}, "freeze.lr_decay", "less than or equal to 1"),
    ({"strategy": "lora", "r": 0}, "freeze.r", "greater than or equal to 1"),
    ({"strategy": "adabn", "source": "train"}, "freeze.source", "'unlabeled', 'val' or 'test'"),
    ({"strategy": "bitfit", "lr_decay": 0.5}, "freeze.lr_decay", "unknown key for freeze 'bitfit'"),
])
def test_option_mistakes_are_recipe_errors(registry, make_recipe, freeze, key, message):
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe(make_recipe(freeze=freeze))
    text = str(err.value)
    assert key in text and message in text, text


def test_unknown_strategy_name_suggests_the_closest(registry, make_recipe):
    with pytest.raises(ft.RecipeError, match="unknown freeze strategy 'gradual_unfreez'.*did you mean 'gradual_unfreeze'"):
        ft.load_recipe(make_recipe(freeze={"strategy": "gradual_unfreez"}))


def test_every_strategy_round_trips_through_a_resolved_recipe(registry, make_recipe):
    """A run's saved recipe.toml writes every option out; it must load again
    (ft eval / ft predict / --resume depend on it)."""
    import tomllib

    required = {"freeze_bottom": {"n": 1}}
    for name in registry.names("ft_freeze_strategies"):
        recipe = ft.load_recipe(make_recipe(freeze={"strategy": name, **required.get(name, {})}))
        again = ft.load_recipe(tomllib.loads(recipe.to_toml()))
        assert again.to_dict()["freeze"] == recipe.to_dict()["freeze"], name
