"""Backbones: layer-group order, init_from row carry-over by ID, freezing the item table."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import ft
from ft.errors import FtError

from rec_testkit import rec_recipe, synthetic, write_atomic


def _source_and_target(tmp_path):
    """Source data: users u0..u29 over items i0..i23; target: users u20..u39 over i0..i29."""
    rows = synthetic(n_users=40, n_items=30)
    source_rows = [r for r in rows if int(r[0][1:]) < 30 and int(r[1][1:]) < 24]
    target_rows = [r for r in rows if int(r[0][1:]) >= 20]
    src = write_atomic(tmp_path / "src", source_rows, n_items=24)
    tgt = write_atomic(tmp_path / "tgt", target_rows, n_items=30)
    return src, tgt


@pytest.fixture
def source_run(tmp_path, registry):
    src, tgt = _source_and_target(tmp_path)
    recipe = rec_recipe(tmp_path, src, {"name": "mf"}, train={"epochs": 1},
                        output={"dir": str(tmp_path / "pre")})
    result = ft.run(recipe, quiet=True)
    return result.run_dir, tgt


def _index(model, vocab: str) -> dict[str, int]:
    return {x: i + 1 for i, x in enumerate(model.backbone.vocab[vocab])}


def test_layer_groups_put_the_item_table_first(tmp_path, registry):
    inter = write_atomic(tmp_path / "d", synthetic(n_users=9))
    expected = {"mf": ["item", "user"], "two_tower": ["item", "user", "item_tower", "user_tower"],
                "sasrec": ["item", "block0", "block1"]}
    for name, groups in expected.items():
        model = ft.build_model(rec_recipe(tmp_path, inter, {"name": name}))
        assert [g.name for g in model.backbone.layer_groups()] == groups
        item = model.backbone.layer_groups()[0]
        assert any(p is model.backbone.item_emb.weight for p in item.params)


def test_init_from_carries_rows_by_id_and_reports_counts(source_run, tmp_path, capsys):
    run_dir, tgt = source_run
    source = load_file(str(run_dir / "best" / "model.safetensors"))
    recipe = rec_recipe(tmp_path, tgt, {"name": "mf", "init_from": str(run_dir)})
    model = ft.build_model(recipe)
    printed = capsys.readouterr().out
    # users: u20..u29 in both, u30..u39 new, u0..u19 dropped; items: i0..i23 carried, i24..i29 new
    assert "user" in printed and "10 carried" in printed and "10 new" in printed and "20 dropped" in printed
    assert "24 carried" in printed and "6 new" in printed and model.backbone.carried["item"] == \
        {"carried": 24, "new": 6, "dropped": 0}
    fresh = ft.build_model(rec_recipe(tmp_path, tgt, {"name": "mf"}))
    old_u, new_u = {x: i + 1 for i, x in enumerate(
        __import__("json").loads((run_dir / "data.json").read_text())["vocab"]["user"])}, _index(model, "user")
    weights = model.backbone.user_emb.weight
    for user in ("u20", "u25", "u29"):  # carried: the source row of the same ID, not the same position
        assert torch.equal(weights[new_u[user]], source["backbone.user_emb.weight"][old_u[user]])
        assert new_u[user] != old_u[user]
    average = source["backbone.user_emb.weight"][1:].mean(0)
    for user in ("u30", "u39"):  # new: the source table's mean row (an average user)
        assert torch.allclose(weights[new_u[user]], average)
    items = _index(model, "item")
    assert torch.allclose(model.backbone.item_bias.weight[items["i24"]],
                          source["backbone.item_bias.weight"][1:].mean(0))
    assert torch.equal(weights[0], torch.zeros(weights.shape[1]))  # padding / unknown stays zero
    recipe["backbone"]["new_rows"] = "random"
    model = ft.build_model(recipe)
    assert torch.equal(model.backbone.user_emb.weight[new_u["u30"]], fresh.backbone.user_emb.weight[new_u["u30"]])
    assert torch.equal(model.backbone.user_emb.weight[new_u["u25"]], weights[new_u["u25"]])


def test_init_from_a_safetensors_file_needs_its_id_maps(source_run, tmp_path):
    run_dir, tgt = source_run
    weights = run_dir / "best" / "model.safetensors"
    with pytest.raises(FtError, match="needs the ID maps"):
        ft.build_model(rec_recipe(tmp_path, tgt, {"name": "mf", "init_from": str(weights)}))
    model = ft.build_model(rec_recipe(tmp_path, tgt, {"name": "mf", "init_from": str(weights),
                                                       "id_maps": str(run_dir / "data.json")}))
    assert model.backbone.carried["user"]["carried"] == 10


def test_init_from_another_backbone_fails_loudly(source_run, tmp_path):
    run_dir, tgt = source_run
    with pytest.raises(FtError, match="backbone is 'mf'"):
        ft.build_model(rec_recipe(tmp_path, tgt, {"name": "two_tower", "init_from": str(run_dir)}))
    with pytest.raises(FtError, match="shape"):
        ft.build_model(rec_recipe(tmp_path, tgt, {"name": "mf", "dim": 8, "init_from": str(run_dir)}))


def test_freeze_bottom_one_keeps_the_item_table_bit_identical(source_run, tmp_path):
    run_dir, tgt = source_run
    recipe = rec_recipe(tmp_path, tgt, {"name": "mf", "init_from": str(run_dir)},
                        freeze={"strategy": "freeze_bottom", "n": 1}, output={"dir": str(tmp_path / "ft")})
    before = ft.build_model(recipe).backbone.state_dict()
    result = ft.run(recipe, quiet=True)
    after = result.model.backbone.state_dict()
    for name in ("item_emb.weight", "item_bias.weight"):
        assert torch.equal(before[name], after[name])
    assert not torch.equal(before["user_emb.weight"], after["user_emb.weight"])
    groups = {g["group"]: g for g in result.summary["params"]["groups"]}
    assert groups["item"]["trainable"] == 0 and groups["user"]["frozen"] == 0


def test_linear_probe_trains_only_the_head_on_cached_scores(source_run, tmp_path):
    run_dir, tgt = source_run
    recipe = rec_recipe(tmp_path, tgt, {"name": "mf", "init_from": str(run_dir)},
                        freeze={"strategy": "linear_probe"}, output={"dir": str(tmp_path / "lp")})
    before = ft.build_model(recipe).state_dict()
    result = ft.run(recipe, quiet=True)
    after = result.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
    assert not torch.equal(before["head.offset"], after["head.offset"])
    assert result.summary["settings"]["feature_cache"].startswith("on")
    assert 0 <= result.metrics["test"]["ndcg@10"] <= 1


def test_rating_tasks_score_user_item_pairs(tmp_path, registry):
    inter = write_atomic(tmp_path / "d", synthetic(n_users=9))
    for name, extra in (("mf", {}), ("two_tower", {"history": 4}), ("sasrec", {"max_history": 4, "layers": 1})):
        recipe = rec_recipe(tmp_path, inter, {"name": name, **extra}, task={"type": "rating"}, head={"type": "rating"})
        model = ft.build_model(recipe)
        assert model.backbone.feature_dim == 1
        inputs = {"user": torch.tensor([1, 2]), "item": torch.tensor([3, 4]), "history": torch.tensor([[0, 0, 1, 2]] * 2)}
        out = model(inputs)
        assert out.shape == (2,) and torch.isfinite(out).all()
