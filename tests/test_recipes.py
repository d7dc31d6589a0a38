"""Every shipped recipe stays runnable: it validates against today's plugins
(keys, types, plugin names, data paths) and its header says how to run it
and what result to expect."""

from __future__ import annotations

from pathlib import Path

import pytest

import ft

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))
#: recipes whose data is a system package rather than a pip asset
NEEDS = {"fashion_mnist": Path("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz")}


def test_recipes_are_found():
    assert len(RECIPES) >= 5, RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates(path):
    needed = NEEDS.get(path.stem)
    if needed is not None and not needed.exists():
        pytest.skip(f"{needed} not installed (CI installs it: apt-get install dataset-fashion-mnist)")
    recipe = ft.load_recipe(path)
    assert recipe.backbone.name and recipe.data.name


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_header_says_command_and_result(path):
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert f"ft run recipes/{path.name}" in text, f"{path.name}: header lacks the command"
    assert "result" in text.lower(), f"{path.name}: header lacks the measured result"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_meets_its_time_by_being_fast_not_by_a_time_limit(path):
    """A time_limit would cut a slow machine's run short and report a result
    that is not the recipe's: shipped recipes set none."""
    import tomllib

    with path.open("rb") as fh:
        assert "time_limit" not in tomllib.load(fh).get("train", {}), path.name
