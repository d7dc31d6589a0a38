"""Speech backbones' capabilities: activation checkpointing of the log-mel
CNN's blocks and the SSL encoders' layers (exact gradients, blocks
recomputed), Resemblyzer's clear refusal, FSDP units."""

from __future__ import annotations

import pytest
import torch

from ft.contracts import BuildContext
from ft.errors import FtError
from ft.plugins.speech.logmel_cnn import LogmelCnnOptions, build_logmel_cnn
from ft.plugins.speech.resemblyzer import ResemblyzerOptions, build_resemblyzer
from ft.plugins.speech.ssl import FAMILIES, SslOptions, make_builder

from capability_testkit import assert_checkpointing_exact, assert_fsdp_units
from speech_testkit import tone

CTX = BuildContext()


def waveforms(n: int = 2, seconds: float = 0.5) -> torch.Tensor:
    return torch.stack([torch.from_numpy(tone(200.0 * (i + 1), seconds, 16000, seed=i)) for i in range(n)])


def tiny_ssl(name: str, **options):
    return make_builder(name)(SslOptions(weights="random", config="tiny", **options), CTX)


# -- logmel_cnn ------------------------------------------------------------------------


def test_logmel_cnn_checkpointing_keeps_loss_and_gradients():
    """SpecAugment and dropout on (same seed each run), batch norm on batch
    statistics: every conv block runs again in backward, gradients unchanged."""
    cnn = build_logmel_cnn(LogmelCnnOptions(channels=[8, 16, 16, 32], dropout=0.3), CTX)
    for probe in ("blocks.0.0", "blocks.3.0"):
        assert_checkpointing_exact(cnn, waveforms(3), probe)


def test_logmel_cnn_fsdp_units_are_its_blocks():
    cnn = build_logmel_cnn(LogmelCnnOptions(), CTX)
    assert assert_fsdp_units(cnn, waveforms()) == list(cnn.blocks) and len(cnn.blocks) == 4


# -- wav2vec2 / HuBERT / WavLM --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_ssl_checkpointing_keeps_loss_and_gradients(name):
    """Padded clips (lengths mask the padding); WavLM's relative position
    bias passes from layer to layer through the checkpointed layers."""
    inputs = {"waveform": waveforms(), "lengths": torch.tensor([8000, 6000])}
    if name == "wavlm_base":  # torchaudio's WavLM attention asserts it gets no padding mask
        inputs = inputs["waveform"]
    encoder = tiny_ssl(name)
    runs = assert_checkpointing_exact(encoder, inputs, probe="model.encoder.transformer.layers.1.feed_forward"
                                                            ".intermediate_dense")
    assert not any(n.startswith("model.feature_extractor") for n in runs["plain"]["grads"])  # frozen by default


def test_ssl_checkpoints_a_trained_feature_extractor_too():
    encoder = tiny_ssl("wav2vec2_base", freeze_feature_extractor=False, layer_drop=0.5)
    runs = assert_checkpointing_exact(encoder, waveforms(), probe="model.feature_extractor.conv_layers.1.conv")
    assert any(n.startswith("model.feature_extractor") for n in runs["plain"]["grads"])


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_ssl_fsdp_units_are_the_transformer_layers(name):
    encoder = tiny_ssl(name)
    assert assert_fsdp_units(encoder, waveforms()) == list(encoder.model.encoder.transformer.layers)
    one = tiny_ssl(name, layer=1)  # layers above the pooled one are dropped, and are no units
    assert len(assert_fsdp_units(one, waveforms())) == 1


# -- resemblyzer -----------------------------------------------------------------------


def test_resemblyzer_cannot_checkpoint_and_says_so():
    encoder = build_resemblyzer(ResemblyzerOptions(), BuildContext(load_pretrained=False))
    with pytest.raises(FtError, match="backbone resemblyzer cannot checkpoint its activations") as err:
        encoder.enable_activation_checkpointing()
    assert "train.activation_checkpointing = false" in str(err.value)
    assert encoder.fsdp_units() == []  # a small LSTM: sharded as one piece
    assert encoder.tokens_in(waveforms()) is None
