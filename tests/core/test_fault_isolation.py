"""Broken plugins installed together with the built-ins stay inside themselves:
a misspelt hook, one that raises on import, one whose build raises and two
that register the same backbone name. `ft plugins` lists every one with its
status, every shipped recipe still validates, and the faults are reported
only where they are used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_faults import add_dist

ROOT = Path(__file__).resolve().parents[2]

BROKEN = {
    "typo": ("ft-typo", "ft_typo", """
        import ft
        from ft.specs import BackboneSpec

        @ft.hookimpl
        def ft_backbone():  # misspelt: ft_backbones
            return []
        """),
    "explodes": ("ft-explodes", "ft_explodes", """
        raise RuntimeError("cannot reach the licence server")
        """),
    "badbuild": ("ft-badbuild", "ft_badbuild", """
        import ft
        from ft.specs import BackboneSpec

        def build(options, ctx):
            raise ValueError("weights folder layout not understood")

        @ft.hookimpl
        def ft_backbones():
            return [BackboneSpec("bad_net", build)]
        """),
    "twin_a": ("ft-twin-a", "ft_twin_a", """
        import ft
        from ft.specs import BackboneSpec

        @ft.hookimpl
        def ft_backbones():
            return [BackboneSpec("twin_net", lambda options, ctx: None)]
        """),
    "twin_b": ("ft-twin-b", "ft_twin_b", """
        import ft
        from ft.specs import BackboneSpec

        @ft.hookimpl
        def ft_backbones():
            return [BackboneSpec("twin_net", lambda options, ctx: None)]
        """),
}


def test_broken_plugins_beside_the_builtins_harm_nobody_else(toy_env, tmp_path):
    for entry, (dist, module, code) in BROKEN.items():
        add_dist(toy_env, dist, entry, module, code)
    for name in ("twin_net", "bad_net"):  # a small ranking recipe whose backbone is a broken plugin's
        (tmp_path / f"{name}.toml").write_text(
            f'[task]\ntype = "ranking"\n[data]\nformat = "recbole_atomic"\nsource = "recbole:ml-100k"\n'
            f'[head]\ntype = "ranking"\n[backbone]\nname = "{name}"\n[output]\nroot = "{tmp_path / "runs"}"\n')
    # one process for the whole check: `ft plugins --json`, then `ft validate` of every shipped recipe,
    # then recipes that use a broken plugin's names
    script = f"""
import contextlib, io, json, sys
from ft.cli import main
out = {{}}
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    out["plugins_rc"] = main(["plugins", "--json"])
out["plugins"] = json.loads(buf.getvalue())
for recipe in {sorted(str(p) for p in (ROOT / "recipes").glob("*.toml"))!r}:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        out[recipe] = [main(["validate", recipe]), err.getvalue()]
for name in ("twin_net", "bad_net"):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(["run", {str(tmp_path)!r} + "/" + name + ".toml"])
    out[name] = [rc, err.getvalue()]
print("RESULT" + json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=toy_env, cwd=tmp_path,
                          timeout=600)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["plugins_rc"] == 0
    status = {p["plugin"]: p for p in out["plugins"]["plugins"]}
    assert status["typo"]["status"] == "failed" and "ft_backbones" in status["typo"]["error"]  # did you mean
    assert status["explodes"]["status"] == "failed" and "licence server" in status["explodes"]["error"]
    for fine in ("badbuild", "twin_a", "twin_b", "vision", "nlp", "speech", "recommender", "heads", "freeze"):
        assert status[fine]["status"] == "ok", status[fine]
    assert any("twin_net" in c and "ft-twin-a" in c and "ft-twin-b" in c for c in out["plugins"]["conflicts"])
    for recipe in (ROOT / "recipes").glob("*.toml"):
        rc, err = out[str(recipe)]
        assert rc == 0, (recipe.name, err)
    rc, err = out["twin_net"]
    assert rc == 2 and "ft-twin-a" in err and "ft-twin-b" in err, err
    rc, err = out["bad_net"]
    assert rc == 2 and "plugin badbuild (distribution ft-badbuild version 1.0) failed" in err, err
    assert "weights folder layout not understood" in err
    assert not (tmp_path / "runs").exists()  # neither left a run directory behind
