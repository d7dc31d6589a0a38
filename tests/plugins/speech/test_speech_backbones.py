"""Speech backbones: Resemblyzer weights and front end, SSL encoders from a local
checkpoint, the log-mel CNN."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest
import torch

from ft.contracts import BuildContext
from ft.errors import FtError
from ft.plugins.speech.audio import load_waveform
from ft.plugins.speech.frontend import VolumeNormalize
from ft.plugins.speech.logmel_cnn import LogmelCnnOptions, build_logmel_cnn
from ft.plugins.speech.resemblyzer import ResemblyzerOptions, build_resemblyzer, packaged_weights
from ft.plugins.speech.ssl import SslOptions, make_builder

from speech_testkit import ACCENT_MANIFEST, needs_corpus, tone

CTX = BuildContext()


@pytest.fixture(scope="module")
def encoder():
    return build_resemblyzer(ResemblyzerOptions(), CTX).eval()


# -- resemblyzer ------------------------------------------------------------------


def reference_embedding(wav: np.ndarray) -> np.ndarray:
    """Resemblyzer 0.1.4 ``VoiceEncoder.embed_utterance``, transcribed line by line
    with librosa's mel replaced by the torchaudio equivalent and the original
    3-layer ``nn.LSTM`` (not this plugin's split one)."""
    import torchaudio.transforms as T

    sampling_rate, samples_per_frame, partials_n_frames, rate, min_coverage = 16000, 160, 160, 1.3, 0.75
    n_frames = int(np.ceil((len(wav) + 1) / samples_per_frame))
    frame_step = int(np.round((sampling_rate / rate) / samples_per_frame))
    wav_slices, mel_slices = [], []
    steps = max(1, n_frames - partials_n_frames + frame_step + 1)
    for i in range(0, steps, frame_step):
        mel_range = np.array([i, i + partials_n_frames])
        mel_slices.append(slice(*mel_range))
        wav_slices.append(slice(*(mel_range * samples_per_frame)))
    coverage = (len(wav) - wav_slices[-1].start) / (wav_slices[-1].stop - wav_slices[-1].start)
    if coverage < min_coverage and len(mel_slices) > 1:
        mel_slices, wav_slices = mel_slices[:-1], wav_slices[:-1]
    if wav_slices[-1].stop >= len(wav):
        wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)), "constant")
    mel = T.MelSpectrogram(sample_rate=16000, n_fft=400, hop_length=160, n_mels=40, power=2.0, norm="slaney",
                           mel_scale="slaney", center=True, pad_mode="reflect")(torch.from_numpy(wav)).numpy().T
    mels = torch.from_numpy(np.array([mel[s] for s in mel_slices]))
    lstm, linear = torch.nn.LSTM(40, 256, 3, batch_first=True), torch.nn.Linear(256, 256)
    state = torch.load(packaged_weights(), map_location="cpu", weights_only=True)["model_state"]
    lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
    with torch.no_grad():
        _, (hidden, _) = lstm(mels)
        embeds = torch.relu(linear(hidden[-1]))
        embeds = embeds / torch.norm(embeds, dim=1, keepdim=True)
    raw = embeds.numpy().mean(axis=0)
    return raw / np.linalg.norm(raw, 2)


def test_resemblyzer_structure_and_groups(encoder):
    assert sum(p.numel() for p in encoder.parameters()) == 1_423_616
    assert [g.name for g in encoder.layer_groups()] == ["lstm0", "lstm1", "lstm2", "projection"]
    assert encoder.feature_dim == 256 and encoder.sample_rate == 16000
    state = torch.load(packaged_weights(), map_location="cpu", weights_only=True)["model_state"]
    assert torch.equal(encoder.lstm[1].weight_hh_l0, state["lstm.weight_hh_l1"])
    assert torch.equal(encoder.lstm[2].bias_ih_l0, state["lstm.bias_ih_l2"])


def test_resemblyzer_matches_reference_code_path(encoder):
    wav = VolumeNormalize()(torch.from_numpy(tone(180, 2.7, 16000, seed=5, harmonics=8)))
    with torch.no_grad():
        mine = encoder(wav[None])[0].numpy()
    ref = reference_embedding(wav.numpy())
    assert float(np.dot(mine, ref)) > 0.99
    assert np.abs(mine - ref).max() < 1e-4
    assert np.linalg.norm(mine) == pytest.approx(1.0, abs=1e-5)


def test_resemblyzer_lstm_mean_pool_has_no_projection():
    enc = build_resemblyzer(ResemblyzerOptions(pool="lstm_mean"), CTX).eval()
    assert enc.linear is None and [g.name for g in enc.layer_groups()] == ["lstm0", "lstm1", "lstm2"]
    with torch.no_grad():
        out = enc(torch.randn(2, 16000) * 0.1)
    assert out.shape == (2, 256) and torch.isfinite(out).all()


def test_resemblyzer_missing_weights_is_a_clear_error(tmp_path):
    bogus = tmp_path / "w.pt"
    torch.save({"model_state": {"lstm.weight_ih_l0": torch.zeros(3)}}, bogus)
    with pytest.raises(FtError, match="not a Resemblyzer checkpoint"):
        build_resemblyzer(ResemblyzerOptions(weights=bogus), CTX)


@needs_corpus
def test_resemblyzer_same_voice_is_closer_than_different_voices(encoder):
    """Pretrained weights separate voices; the same network with random
    weights does not. Six en-us training speakers of the accent corpus (each
    a different espeak voice variant, pitch and speed), three sentences each."""
    with ACCENT_MANIFEST.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] == "en-us" and r["split"] == "train"]
    clips = defaultdict(list)
    for r in rows:
        clips[r["speaker"]].append(ACCENT_MANIFEST.parent / r["path"])
    speakers = sorted(clips, key=lambda s: int(s.rsplit("_s", 1)[1]))[:6]
    waves = [VolumeNormalize()(load_waveform(p, 16000)) for s in speakers for p in sorted(clips[s])[:3]]
    length = 32000
    batch = torch.stack([torch.nn.functional.pad(w, (0, max(0, length - len(w))))[:length] for w in waves])
    owner = torch.arange(len(speakers)).repeat_interleave(3)
    same = owner[:, None] == owner[None]
    off_diagonal = ~torch.eye(len(owner), dtype=torch.bool)

    def score(model):
        with torch.no_grad():
            e = torch.nn.functional.normalize(model(batch), dim=-1)
        sim = e @ e.T
        nearest = sim.masked_fill(~off_diagonal, -2).argmax(1)  # most similar other clip
        return float(sim[same & off_diagonal].mean() - sim[~same].mean()), float((owner[nearest] == owner).float().mean())

    gap, nearest_same = score(encoder)
    assert gap > 0.08 and nearest_same >= 0.75  # measured: 0.16 and 0.89
    torch.manual_seed(0)
    random_gap, random_nearest = score(build_resemblyzer(ResemblyzerOptions(), BuildContext(load_pretrained=False)).eval())
    assert random_gap < gap / 4 and random_nearest < nearest_same


# -- self-supervised encoders ----------------------------------------------------------


@pytest.mark.parametrize("name", ["wav2vec2_base", "wavlm_base"])
def test_ssl_tiny_loads_from_a_local_checkpoint(tmp_path, name):
    from safetensors.torch import save_file

    build = make_builder(name)
    torch.manual_seed(0)
    random = build(SslOptions(weights="random", config="tiny"), CTX).eval()
    path = tmp_path / "tiny.pt"
    torch.save(random.model.state_dict(), path)
    loaded = build(SslOptions(weights=path, config="tiny"), CTX).eval()
    st_path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in random.model.state_dict().items()}, str(st_path))
    from_st = build(SslOptions(weights=st_path, config="tiny"), CTX).eval()
    torch.manual_seed(1)
    fresh = build(SslOptions(weights="random", config="tiny"), CTX).eval()
    x = torch.randn(2, 8000) * 0.1
    with torch.no_grad():
        out = random(x)
        assert out.shape == (2, 32)
        assert torch.allclose(loaded(x), out, atol=1e-6) and torch.allclose(from_st(x), out, atol=1e-6)
        assert not torch.allclose(fresh(x), out, atol=1e-3)
    names = [g.name for g in loaded.layer_groups()]
    assert names == ["feature_extractor", "feature_projection", "layer0", "layer1"]  # base: norm before layers


def test_ssl_feature_extractor_stays_frozen_under_a_full_strategy():
    from ft.contracts import TaskInfo
    from ft.freezing import FreezeStrategy, apply_strategy, parameter_table
    from ft.model import FtModel

    enc = make_builder("hubert_base")(SslOptions(weights="random", config="tiny"), CTX)
    fe = [p for n, p in enc.named_parameters() if n.startswith("model.feature_extractor.")]
    rest = [p for n, p in enc.named_parameters() if not n.startswith("model.feature_extractor.")]
    assert fe and not any(p.requires_grad for p in fe)
    enc.requires_grad_(True)  # what the "full" strategy does on its own
    enc(torch.randn(2, 8000)).pow(2).sum().backward()
    assert all(p.grad is None for p in fe)  # forward keeps it out of the graph regardless
    assert all(p.grad is not None for p in rest)
    model = FtModel(enc, torch.nn.Linear(32, 2), TaskInfo("classification", 2))
    apply_strategy(FreezeStrategy(), model)  # the engine re-freezes what always_frozen names
    assert not any(p.requires_grad for p in fe) and all(p.requires_grad for p in rest)
    table = {row["group"]: row for row in parameter_table(model)}
    assert table["feature_extractor"]["trainable"] == 0 and table["layer0"]["frozen"] == 0


def test_ssl_layer_choice_lengths_and_errors(tmp_path):
    build = make_builder("wav2vec2_base")
    enc = build(SslOptions(weights="random", config="tiny", layer=1), CTX).eval()
    assert len(enc.model.encoder.transformer.layers) == 1
    x = torch.randn(2, 8000) * 0.1
    with torch.no_grad():
        masked = enc({"waveform": x, "lengths": torch.tensor([8000, 4000])})
        plain = enc(x)
    assert torch.allclose(masked[0], plain[0], atol=1e-5) and not torch.allclose(masked[1], plain[1], atol=1e-4)
    with pytest.raises(FtError, match="needs weights") as err:
        build(SslOptions(config="tiny"), CTX)
    assert "local state_dict" in str(err.value)
    wavlm = tmp_path / "wavlm.pt"
    torch.save(make_builder("wavlm_base")(SslOptions(weights="random", config="tiny"), CTX).model.state_dict(), wavlm)
    with pytest.raises(FtError, match="do not fit wav2vec2_base"):
        build(SslOptions(weights=wavlm, config="tiny"), CTX)
    with pytest.raises(FtError, match="unknown torchaudio bundle"):
        build(SslOptions(bundle="NOT_A_BUNDLE"), CTX)


# -- log-mel CNN -----------------------------------------------------------------------


def test_logmel_cnn_shapes_groups_and_spec_augment():
    cnn = build_logmel_cnn(LogmelCnnOptions(), CTX)
    assert cnn.feature_dim == 128
    assert [g.name for g in cnn.layer_groups()] == ["block0", "block1", "block2", "block3"]
    x = torch.randn(3, 16000) * 0.1
    cnn.eval()
    with torch.no_grad():
        a, b = cnn(x), cnn(x)
        louder = cnn(x * 4)  # per-clip normalisation: gain does not matter
    assert a.shape == (3, 128) and torch.equal(a, b)
    assert torch.allclose(a, louder, atol=1e-3)
    assert torch.equal(build_logmel_cnn(LogmelCnnOptions(), CTX).blocks[0][0].weight, cnn.blocks[0][0].weight)
    spec = cnn.mel(x)
    cnn.spec_augment.train()
    masked = cnn.spec_augment(spec)
    assert (masked == 0).float().mean() > (spec == 0).float().mean()


def test_frequency_warp_moves_formants_by_region_and_only_in_training():
    """``freq_warp``: ends stay put, a peak near an inner knot moves by up to
    ±freq_warp, examples warp differently, values only interpolate, eval is untouched."""
    from ft.plugins.speech.frontend import SpecAugment, SpecAugmentOptions, warp_frequencies

    torch.manual_seed(0)
    bins, knot = 80, round(79 / 3)
    spec = torch.zeros(64, bins, 5)
    spec[:, knot - 2:knot + 3] = torch.tensor([0.4, 0.7, 1.0, 0.7, 0.4])[:, None]  # a "formant" at the first knot
    spec[:, 0], spec[:, -1] = 0.2, 0.1
    warped = warp_frequencies(spec, 0.2)
    peaks = warped[:, :, 0].argmax(1)
    assert peaks.min() < knot - 2 and peaks.max() > knot + 2  # moved both ways, example by example
    assert ((peaks - knot).abs() <= 0.2 * knot + 1).all()
    assert torch.allclose(warped[:, 0], spec[:, 0]) and torch.allclose(warped[:, -1], spec[:, -1])
    assert warped.min() >= 0 and warped.max() <= 1  # a resampling, no new values

    augment = SpecAugment(SpecAugmentOptions(spec_augment=False, freq_warp=0.2))
    augment.train()
    assert not torch.equal(augment(spec), spec)
    augment.eval()
    assert torch.equal(augment(spec), spec)
    with pytest.raises(ValueError):
        SpecAugmentOptions(freq_warp=0.4)  # the map would fold over
