"""Plugin discovery through the `ft` entry-point group: loading, failures,
collisions, disabling, and `ft plugins`."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import ft
from ft import _registry
from ft.cli import main


def make_dist(root, dist: str, entry: str, module: str, code: str):
    """An installed-looking distribution: a module plus a .dist-info folder
    with an entry point in the `ft` group (what pip would create)."""
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"  # as pip names it
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[ft]\n{entry} = {module}\n")


GOOD = """
import ft
from ft.specs import HeadSpec
import ft.plugins.heads as heads

@ft.hookimpl
def ft_heads():
    return [HeadSpec("{name}", heads.build_linear, heads.HeadOptions)]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _registry.reset_registry()
    yield tmp_path
    _registry.reset_registry()
    for mod in [m for m in sys.modules if m.startswith("ftext_")]:
        del sys.modules[mod]


def test_third_party_plugin_is_discovered(site):
    make_dist(site, "ftkit-extra-heads", "extraheads", "ftext_good", GOOD.format(name="fancy"))
    reg = _registry.get_registry()
    record = reg.records["extraheads"]
    assert (record.status, record.distribution, record.version) == ("ok", "ftkit-extra-heads", "1.2.3")
    assert record.provides == {"head": ["fancy"]}
    assert reg.provider("ft_heads", "fancy") == "extraheads"
    # built-ins come through the same group
    assert reg.records["heads"].distribution == "ftkit"
    assert "linear_probe" in reg.names("ft_freeze_strategies")


def test_broken_plugin_is_reported_and_others_keep_working(site):
    make_dist(site, "ftkit-broken", "broken", "ftext_broken", "import not_a_real_module_xyz\n")
    make_dist(site, "ftkit-good", "good", "ftext_good2", GOOD.format(name="fancy2"))
    reg = _registry.get_registry()
    assert reg.records["broken"].status == "failed"
    assert "not_a_real_module_xyz" in reg.records["broken"].error
    assert reg.records["good"].status == "ok"
    with pytest.raises(ft.PluginError, match="plugins that failed to load: broken"):
        reg.get("ft_heads", "whatever")


def test_name_collision_names_both_plugins_and_distributions(site):
    make_dist(site, "ftkit-one", "one", "ftext_one", GOOD.format(name="linear"))
    reg = _registry.get_registry()
    assert any("head 'linear' is registered twice" in c and "heads (distribution ftkit)" in c
               and "one (distribution ftkit-one)" in c for c in reg.conflicts)
    with pytest.raises(ft.PluginError, match="registered twice"):
        reg.get("ft_heads", "linear")


def test_disable_plugins_by_name(site, monkeypatch):
    make_dist(site, "ftkit-one", "one", "ftext_one2", GOOD.format(name="linear"))
    monkeypatch.setenv("FT_DISABLE_PLUGINS", "one, freeze")
    reg = _registry.get_registry()
    assert reg.records["one"].status == "disabled"
    assert reg.records["freeze"].status == "disabled"
    assert not reg.conflicts
    assert reg.names("ft_freeze_strategies") == []


def test_registration_hook_must_return_specs(site):
    make_dist(site, "ftkit-wrong", "wrong", "ftext_wrong", """
        import ft
        @ft.hookimpl
        def ft_heads():
            return ["not a spec"]
    """)
    record = _registry.get_registry().records["wrong"]
    assert record.status == "failed" and "expected HeadSpec" in record.error


def test_hook_with_a_wrong_signature_fails_loudly(site):
    make_dist(site, "ftkit-sig", "sig", "ftext_sig", """
        import ft
        @ft.hookimpl
        def ft_epoch_end(run, epoch, metrics, extra_arg):
            pass
    """)
    record = _registry.get_registry().records["sig"]
    assert record.status == "failed" and "extra_arg" in record.error


def test_ft_plugins_json_and_table(site, capsys):
    make_dist(site, "ftkit-broken", "broken", "ftext_broken2", "raise RuntimeError('boom at import')\n")
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {p["plugin"]: p for p in data["plugins"]}
    assert by_name["broken"]["status"] == "failed" and "boom at import" in by_name["broken"]["error"]
    assert by_name["heads"]["provides"] == {"head": ["linear", "mlp"]}
    assert main(["plugins"]) == 0
    table = capsys.readouterr().out
    assert "broken" in table and "failed" in table and "boom" in table


def test_in_process_registration_and_unregistration(registry):
    assert registry.provider("ft_backbones", "toy_mlp") == "toy"
    import toy_plugin

    with pytest.raises(ft.PluginError, match="already registered"):
        registry.register(toy_plugin, "toy")
    registry.unregister("toy")
    assert "toy_mlp" not in registry.names("ft_backbones")


# -- plugins that misbehave at import or registration ------------------------------


def test_exit_and_interrupt_at_import_fail_only_that_plugin(site):
    make_dist(site, "ftkit-exit", "exiter", "ftext_exit", "import sys\nsys.exit(3)\n")
    make_dist(site, "ftkit-ctrlc", "interrupter", "ftext_ctrlc", "raise KeyboardInterrupt\n")
    make_dist(site, "ftkit-good", "good", "ftext_good3", GOOD.format(name="fancy3"))
    reg = _registry.get_registry()
    assert (reg.records["exiter"].status, reg.records["exiter"].error) == (
        "failed", "called sys.exit(3) while being imported")
    assert (reg.records["interrupter"].status, reg.records["interrupter"].error) == (
        "failed", "raised KeyboardInterrupt while being imported")
    assert reg.records["good"].status == "ok" and reg.provider("ft_heads", "fancy3") == "good"
    with pytest.raises(ft.PluginError, match="exiter: called sys.exit"):
        reg.get("ft_heads", "missing")


def test_a_real_ctrl_c_while_loading_plugins_still_stops(site):
    """A plugin raising KeyboardInterrupt only fails itself; a SIGINT that
    arrives while plugins load is the user's Ctrl-C and stops."""
    make_dist(site, "ftkit-slow", "slow", "ftext_slow", """
        import os, signal, time
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    """)
    with pytest.raises(KeyboardInterrupt):
        _registry.get_registry()


def test_misspelt_hook_fails_only_that_plugin(site, capsys):
    make_dist(site, "ftkit-typo", "typo", "ftext_typo", """
        import ft
        @ft.hookimpl
        def ft_backbone():
            return []
    """)
    make_dist(site, "ftkit-good", "good", "ftext_good4", GOOD.format(name="fancy4"))
    reg = _registry.get_registry()
    record = reg.records["typo"]
    assert record.status == "failed"
    assert "unknown hook 'ft_backbone'" in record.error and "did you mean 'ft_backbones'" in record.error
    assert reg.pm.get_plugin("typo") is None and reg.records["good"].status == "ok"
    reg.pm.check_pending()  # nothing of the failed plugin is left for pluggy to trip over
    assert main(["plugins", "--json"]) == 0
    by_name = {p["plugin"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}
    assert by_name["typo"]["status"] == "failed" and by_name["good"]["status"] == "ok"
    assert main(["plugins"]) == 0 and "ft_backbone" in capsys.readouterr().out


# -- one entry-point name in two distributions ----------------------------------------

FORK = """
import ft
from ft.specs import HeadSpec
import ft.plugins.heads as heads

@ft.hookimpl
def ft_heads():
    return [HeadSpec("mlp", heads.build_linear, heads.HeadOptions),
            HeadSpec("fork_head", heads.build_linear, heads.HeadOptions)]
"""


def test_third_party_plugin_with_a_builtin_name_replaces_nothing(site):
    make_dist(site, "ftkit-heads-fork", "heads", "ftext_fork", FORK)
    reg = _registry.get_registry()
    builtin, fork = reg.records["heads"], reg.records["ftkit-heads-fork:heads"]
    assert (builtin.distribution, builtin.status, builtin.provides) == ("ftkit", "ok", {"head": ["linear", "mlp"]})
    assert (fork.distribution, fork.status, fork.provides) == ("ftkit-heads-fork", "ok", {"head": ["fork_head"]})
    assert any("plugin name 'heads'" in c and "ftkit, ftkit-heads-fork" in c
               and "FT_DISABLE_PLUGINS=ftkit-heads-fork:heads" in c for c in reg.conflicts)
    # only the clashing name fails, and the error names both plugins and distributions
    with pytest.raises(ft.PluginError) as err:
        reg.get("ft_heads", "mlp")
    assert ("plugin heads (distribution ftkit)" in str(err.value)
            and "plugin ftkit-heads-fork:heads (distribution ftkit-heads-fork)" in str(err.value)
            and "FT_DISABLE_PLUGINS=ftkit-heads-fork:heads" in str(err.value))
    assert reg.get("ft_heads", "linear") is not None and reg.get("ft_heads", "fork_head") is not None


@pytest.mark.parametrize("disable,builtin,fork", [
    ("ftkit-heads-fork:heads", "ok", "disabled"),  # keep the built-in
    ("FTKIT_Heads.Fork:*", "ok", "disabled"),  # a whole distribution, named as pip compares names
    ("ftkit:heads", "disabled", "ok"),  # let the fork take over
    ("heads", "disabled", "disabled"),  # the plain name: every plugin of that name
])
def test_disable_one_of_two_plugins_with_the_same_name(site, monkeypatch, disable, builtin, fork):
    make_dist(site, "ftkit-heads-fork", "heads", "ftext_fork2", FORK)
    monkeypatch.setenv("FT_DISABLE_PLUGINS", disable)
    reg = _registry.get_registry()
    assert reg.records["heads"].status == builtin
    assert reg.records["ftkit-heads-fork:heads"].status == fork
    assert not reg.conflicts
    if fork == "ok":
        assert reg.provider("ft_heads", "mlp") == "ftkit-heads-fork:heads"
    if fork == "disabled":
        assert "switched off by FT_DISABLE_PLUGINS" in reg.records["ftkit-heads-fork:heads"].error


def test_name_clash_fails_only_recipes_that_use_it(site):
    import toy_plugin

    make_dist(site, "ftkit-twin-a", "twin_a", "ftext_twin_a", GOOD.format(name="twin"))
    make_dist(site, "ftkit-twin-b", "twin_b", "ftext_twin_b", GOOD.format(name="twin"))
    reg = _registry.get_registry()
    reg.register(toy_plugin, "toy")
    recipe = {"data": {"format": "toy_blobs"}, "backbone": {"name": "toy_mlp"}}
    assert ft.load_recipe(recipe, registry=reg).head.name == "linear"
    with pytest.raises(ft.RecipeError) as err:
        ft.load_recipe({**recipe, "head": {"type": "twin"}}, registry=reg)
    text = str(err.value)
    assert "head.type: head 'twin' is registered twice" in text
    assert "twin_a (distribution ftkit-twin-a)" in text and "twin_b (distribution ftkit-twin-b)" in text
    assert "FT_DISABLE_PLUGINS=ftkit-twin-a:twin_a" in text
