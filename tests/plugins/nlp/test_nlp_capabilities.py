"""Text backbones' capabilities: transformers' (non-reentrant) gradient
checkpointing with exact gradients, real-token counts from the attention
mask, FSDP units = the encoder layers."""

from __future__ import annotations

import copy

import pytest
import torch

from ft.errors import FtError

from capability_testkit import assert_checkpointing_exact, assert_fsdp_units

TEXTS = ["a moving film", "the plot was dull and the ending was worse", "superb"]


def batch(backbone, texts=TEXTS) -> dict[str, torch.Tensor]:
    """Texts through the backbone's own tokenization and padding collate."""
    tokenize = backbone.preprocess(train=True)
    inputs, _ = backbone.collate()([(tokenize(t), 0) for t in texts])
    return inputs


def test_minilm_checkpointing_keeps_loss_and_gradients(minilm):
    """all-MiniLM-L6-v2 with its dropout (0.1) on: the recomputed layers
    replay the same dropout masks, so loss and gradients match exactly."""
    assert minilm.model.config.hidden_dropout_prob > 0
    inputs = batch(minilm)
    assert (inputs["attention_mask"] == 0).any()  # padding is part of the test
    runs = assert_checkpointing_exact(minilm, inputs, probe="model.encoder.layer.2.intermediate.dense")
    assert len(runs["plain"]["grads"]) == sum(1 for _ in minilm.parameters())


def test_checkpointing_leaves_frozen_embeddings_out_of_backward(encoder):
    """transformers' input-grad hook (for reentrant checkpointing) is removed:
    with the embeddings frozen, their output still needs no gradient."""
    backbone = encoder(pooling="cls")
    backbone.enable_activation_checkpointing()
    backbone.model.embeddings.requires_grad_(False)
    seen = []
    backbone.model.embeddings.register_forward_hook(lambda m, i, out: seen.append(out.requires_grad))
    backbone.train()
    backbone(batch(backbone)).sum().backward()
    assert seen == [False]
    assert backbone.model.encoder.layer[0].attention.self.query.weight.grad is not None


def test_an_encoder_without_checkpointing_is_an_ft_error(encoder):
    backbone = encoder()
    backbone.model.supports_gradient_checkpointing = False  # as transformers' models that lack it say
    with pytest.raises(FtError, match="backbone hf_encoder cannot checkpoint its activations.*BertModel") as err:
        backbone.enable_activation_checkpointing()
    assert "train.activation_checkpointing = false" in str(err.value)


def test_tokens_in_counts_attention_mask_ones(minilm, encoder):
    for backbone in (minilm, encoder()):
        tokenize = backbone.preprocess(train=False)
        lengths = [len(tokenize(t)["input_ids"]) for t in TEXTS]
        inputs = batch(backbone)
        assert inputs["input_ids"].numel() > sum(lengths)  # padded
        assert backbone.tokens_in(inputs) == int(inputs["attention_mask"].sum()) == sum(lengths)
    padded = encoder(pad_to_max_length=True, max_length=32)
    inputs = batch(padded)
    assert inputs["input_ids"].shape == (3, 32) and padded.tokens_in(inputs) == sum(lengths)
    without_mask = {"input_ids": inputs["input_ids"]}
    assert padded.tokens_in(without_mask) == 3 * 32  # no mask: the model attends to every position


def test_fsdp_units_are_the_encoder_layers(minilm, encoder):
    units = assert_fsdp_units(minilm, batch(minilm))
    assert units == list(minilm.model.encoder.layer) and len(units) == 6
    tiny = encoder(pooling="pooler")
    assert assert_fsdp_units(tiny, batch(tiny)) == list(tiny.model.encoder.layer)


def test_checkpointed_encoder_runs_once_in_eval(minilm):
    backbone = copy.deepcopy(minilm)
    backbone.enable_activation_checkpointing()
    calls = [0]
    backbone.model.encoder.layer[0].intermediate.dense.register_forward_hook(
        lambda *_: calls.__setitem__(0, calls[0] + 1))
    backbone.eval()
    backbone(batch(backbone)).sum().backward()
    assert calls[0] == 1
