"""Whisper models in CTranslate2 format (faster-whisper), read without ctranslate2.

A CTranslate2 model directory holds ``model.bin`` (binary version 6, written
by ctranslate2's ``specs/model_spec.py``: a spec name, a revision, named
tensors and aliases), ``config.json`` and the tokenizer files. This module
reads the tensors and maps a ``WhisperSpec`` onto Hugging Face transformers'
Whisper key layout:

- ``encoder/conv1|conv2`` -> ``conv1|conv2``; ``encoder/position_encodings/encodings``
  -> ``embed_positions.weight``; ``.../layer_norm/{gamma,beta}`` -> ``{weight,bias}``;
- per encoder layer ``self_attention/linear_0`` is the fused Q;K;V projection
  (split by rows; its bias is ``[q; 0; v]``, Whisper's ``k_proj`` has none),
  ``self_attention/linear_1`` -> ``self_attn.out_proj``, ``ffn/linear_0|1`` -> ``fc1|fc2``;
- per decoder layer also ``attention/linear_0`` (cross-attention Q),
  ``attention/linear_1`` (fused K;V), ``attention/linear_2`` (out); the output
  projection is tied to the token embeddings.

float32, float16 and bfloat16 tensors load as they are; int8/int16 weights
(``--quantization int8``) are dequantised with their ``weight_scale``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import torch

from ft.errors import FtError

#: CTranslate2's DataType enum, in order
DTYPES = {0: torch.float32, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.float16, 5: torch.bfloat16}
HINT = ("backbone.weights must be a CTranslate2 Whisper model directory (model.bin, config.json), as written by "
        "ct2-transformers-converter or shipped by faster-whisper")


def _string(fh: BinaryIO) -> str:
    (size,) = struct.unpack("<H", fh.read(2))
    return fh.read(size)[:-1].decode("utf-8")


def read_model_bin(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """``(spec name, {variable name: tensor})`` of a CTranslate2 ``model.bin``;
    aliases become extra names for the same tensor."""
    try:
        with path.open("rb") as fh:
            (version,) = struct.unpack("<I", fh.read(4))
            if version != 6:
                raise FtError(f"CTranslate2 binary version {version}; this reader knows version 6", where=str(path),
                              hint="convert the model again with a current ctranslate2 (4.x)")
            spec = _string(fh)
            fh.read(4)  # the spec revision
            (count,) = struct.unpack("<I", fh.read(4))
            tensors: dict[str, torch.Tensor] = {}
            for _ in range(count):
                name = _string(fh)
                (ndim,) = struct.unpack("<B", fh.read(1))
                shape = struct.unpack(f"<{ndim}I", fh.read(4 * ndim))
                (dtype_id,) = struct.unpack("<B", fh.read(1))
                (nbytes,) = struct.unpack("<I", fh.read(4))
                raw = fh.read(nbytes)
                if len(raw) != nbytes or dtype_id not in DTYPES:
                    raise ValueError(f"variable {name!r} is cut short or has an unknown type {dtype_id}")
                dtype = DTYPES[dtype_id]
                # the bytearray is the tensor's own copy of the bytes: no second copy needed
                buffer = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if nbytes else torch.empty(0, dtype=torch.uint8)
                tensors[name] = buffer.view(dtype).reshape(shape)
            (aliases,) = struct.unpack("<I", fh.read(4))
            for _ in range(aliases):
                alias, target = _string(fh), _string(fh)
                tensors[alias] = tensors[target]
    except FtError:
        raise
    except (OSError, ValueError, struct.error, UnicodeDecodeError, RuntimeError) as exc:
        raise FtError(f"not a readable CTranslate2 model.bin ({type(exc).__name__}: {exc})", where=str(path),
                      hint=HINT) from None
    return spec, tensors


def _weight(tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """A linear/conv weight as a float tensor, dequantised if it was stored as int8/int16."""
    value = tensors[name]
    if value.is_floating_point():
        return value
    scale = tensors.get(name + "_scale")
    if scale is None:
        raise FtError(f"{name} is {value.dtype} without a weight_scale", hint=HINT)
    scale = scale.float()
    return value.float() / (scale.reshape(-1, *[1] * (value.dim() - 1)) if scale.dim() else scale)


def _int(tensors: dict[str, torch.Tensor], name: str) -> int:
    return int(tensors[name].reshape(-1)[0].item())


def whisper_state_dict(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """A CTranslate2 Whisper directory (or its model.bin) as ``(config, state)``:
    ``config`` holds ``transformers.WhisperConfig`` arguments and ``state``
    the ``WhisperForConditionalGeneration`` state dict (``model.encoder.*``,
    ``model.decoder.*``, ``proj_out.weight``), float tensors in the file's precision."""
    path = Path(path)
    model_bin = path / "model.bin" if path.is_dir() else path
    if not model_bin.is_file():
        raise FtError("no model.bin here", where=str(path), hint=HINT)
    spec, t = read_model_bin(model_bin)
    if spec != "WhisperSpec":
        raise FtError(f"this CTranslate2 model is a {spec}, not a Whisper model", where=str(model_bin), hint=HINT)
    state: dict[str, torch.Tensor] = {}

    def norm(dst: str, src: str) -> None:
        state[dst + ".weight"], state[dst + ".bias"] = t[src + "/gamma"], t[src + "/beta"]

    def linear(dst: str, src: str, bias: bool = True) -> None:
        state[dst + ".weight"] = _weight(t, src + "/weight")
        if bias:
            state[dst + ".bias"] = t[src + "/bias"]

    def fused(dsts: list[str], src: str, biased: list[bool]) -> None:
        weight, bias = _weight(t, src + "/weight"), t[src + "/bias"]
        rows = weight.shape[0] // len(dsts)
        for i, (dst, has_bias) in enumerate(zip(dsts, biased)):
            state[dst + ".weight"] = weight[i * rows:(i + 1) * rows].clone()
            if has_bias:
                state[dst + ".bias"] = bias[i * rows:(i + 1) * rows].clone()

    def self_attention(dst: str, src: str) -> None:
        fused([f"{dst}.self_attn.q_proj", f"{dst}.self_attn.k_proj", f"{dst}.self_attn.v_proj"],
              f"{src}/self_attention/linear_0", [True, False, True])
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")

    def ffn(dst: str, src: str) -> None:
        norm(dst + ".final_layer_norm", src + "/ffn/layer_norm")
        linear(dst + ".fc1", src + "/ffn/linear_0")
        linear(dst + ".fc2", src + "/ffn/linear_1")

    enc_layers = sum(1 for k in t if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    dec_layers = sum(1 for k in t if k.startswith("decoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    state["model.encoder.embed_positions.weight"] = t["encoder/position_encodings/encodings"]
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    for i in range(enc_layers):
        dst, src = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        self_attention(dst, src)
        ffn(dst, src)
    state["model.decoder.embed_tokens.weight"] = t["decoder/embeddings/weight"]
    state["model.decoder.embed_positions.weight"] = t["decoder/position_encodings/encodings"]
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    for i in range(dec_layers):
        dst, src = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        self_attention(dst, src)
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        fused([f"{dst}.encoder_attn.k_proj", f"{dst}.encoder_attn.v_proj"], f"{src}/attention/linear_1",
              [False, True])
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        ffn(dst, src)
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    d_model = state["model.encoder.conv1.weight"].shape[0]
    vocab = state["model.decoder.embed_tokens.weight"].shape[0]
    config = {
        "vocab_size": vocab, "num_mel_bins": state["model.encoder.conv1.weight"].shape[1], "d_model": d_model,
        "encoder_layers": enc_layers, "decoder_layers": dec_layers,
        "encoder_attention_heads": _int(t, "encoder/num_heads"), "decoder_attention_heads": _int(t, "decoder/num_heads"),
        "encoder_ffn_dim": state["model.encoder.layers.0.fc1.weight"].shape[0] if enc_layers else 4 * d_model,
        "decoder_ffn_dim": state["model.decoder.layers.0.fc1.weight"].shape[0] if dec_layers else 4 * d_model,
        "max_source_positions": state["model.encoder.embed_positions.weight"].shape[0],
        "max_target_positions": state["model.decoder.embed_positions.weight"].shape[0],
    }
    return config, state
