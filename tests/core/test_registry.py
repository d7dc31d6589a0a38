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
