"""Where and how the model runs: device, precision, CUDA knobs, DDP or FSDP2.

Every choice here is printed in the trainer's start banner. ``train.device =
"cuda"`` (or ``"auto"`` on a GPU machine) means this rank's own GPU,
``cuda:LOCAL_RANK``. ``train.distributed`` picks how several ranks share
the work: ``"ddp"`` keeps a full copy of the model on every rank and
averages gradients; ``"fsdp"`` (FSDP2, ``torch.distributed.fsdp.fully_shard``)
shards parameters, gradients and optimizer state across ranks, for models
that do not fit one GPU, at the price of gathering each unit's weights
before its forward and backward.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .distributed import Distributed
from .errors import FtError


def resolve_device(name: str) -> torch.device:
    """``auto``: this rank's GPU if there is one, else the CPU; ``cuda``:
    this rank's GPU (``LOCAL_RANK``); ``cpu``, ``cuda:N`` or ``mps`` as
    written. A device this machine does not have is an :class:`FtError`."""
    forms = 'use "auto", "cpu", "cuda", "cuda:N" or "mps"'
    local = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        device = torch.device(name if name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise FtError(f"train.device = {name!r} is not a device", hint=forms) from None
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise FtError(f"train.device = {name!r} but this machine has no usable Apple GPU (MPS)",
                          hint='use train.device = "auto" or "cpu"')
        return device
    if device.type not in ("cpu", "cuda"):
        raise FtError(f"train.device = {name!r}: ftkit runs on the CPU, CUDA GPUs or an Apple GPU (mps)",
                      hint=forms)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise FtError(f"train.device = {name!r} but CUDA is not available",
                          hint='use train.device = "auto" or "cpu"')
        count = torch.cuda.device_count()
        index = local if device.index is None else device.index
        if index >= count:
            mine = f" (this rank's GPU: LOCAL_RANK {local})" if device.index is None else ""
            raise FtError(f"train.device = {name!r} asks for GPU {index}{mine}, but this machine has {count} "
                          f"(cuda:0 .. cuda:{count - 1})",
                          hint=f"use a GPU number below {count}, or at most {count} rank(s) per node")
        device = torch.device("cuda", index)
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: bf16 on CUDA that supports it, fp16 on older CUDA, fp32 on CPU
    (bf16 autocast was not reliably faster on the CPUs we measured). fp64
    (model and inputs in float64) is for checking numerics: float32's
    rounding, amplified by BatchNorm's backward and a few optimizer steps,
    can hide whether two computations are the same."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if name == "fp16" and device.type != "cuda":
        raise FtError("train.precision = \"fp16\" needs a CUDA device", hint="use \"bf16\" or \"fp32\" on CPU")
    return name


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX).
    Elsewhere (e.g. AVX2 only) oneDNN emulates it: an LSTM step measured
    15x slower in bf16 than in fp32 on such a CPU, 2x faster on one with it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def configure_cuda(device: torch.device, tf32: bool, cudnn_benchmark: bool) -> None:
    """This rank's GPU, TF32 matmuls/convolutions and cuDNN autotuning.

    TF32 keeps float32's range with a 10-bit mantissa in matmuls: several
    times faster on Ampere and later, and what fine-tuning loses to it is
    below run-to-run noise (PyTorch Lightning and timm's train script turn
    it on too). cuDNN autotuning picks the fastest convolution algorithm
    for each input shape once; it helps fixed-size images and costs a
    little on every new shape (variable-length audio or text)."""
    if device.type != "cuda":
        return
    torch.cuda.set_device(device)
    precision = "tf32" if tf32 else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
    else:  # older torch
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark


def enable_activation_checkpointing(model: nn.Module) -> str:
    """Ask the backbone (or a bare model that offers it) to checkpoint."""
    target = getattr(model, "backbone", model)
    enable = getattr(target, "enable_activation_checkpointing", None)
    if enable is None:
        raise FtError(f"{type(target).__name__} has no enable_activation_checkpointing()",
                      hint="set train.activation_checkpointing = false")
    enable()
    return f"on ({type(target).__name__})"


def wrap_ddp(model: nn.Module, device: torch.device, cfg: Any) -> nn.Module:
    """DistributedDataParallel over this rank's device.

    ``train.ddp_static_graph`` lets DDP reuse the first iteration's
    communication plan (a model whose used parameters never change between
    steps); ``train.ddp_bucket_cap_mb`` sizes the gradient buckets that are
    all-reduced while the backward pass goes on (larger: fewer, bigger
    messages; torch's default is 25 MB); ``train.ddp_find_unused_parameters``
    is for models whose forward skips parameters (it costs a graph walk each
    step)."""
    kwargs: dict[str, Any] = {"device_ids": [device.index] if device.type == "cuda" else None,
                              "static_graph": cfg.ddp_static_graph,
                              "find_unused_parameters": cfg.ddp_find_unused_parameters}
    if cfg.ddp_bucket_cap_mb:
        kwargs["bucket_cap_mb"] = cfg.ddp_bucket_cap_mb
    return nn.parallel.DistributedDataParallel(model, **kwargs)


def shard_fsdp(model: nn.Module, cfg: Any) -> list[str]:
    """Shard ``model`` in place with FSDP2: each of the backbone's
    ``fsdp_units()`` (blocks), the head, then the rest with the root.
    Returns the names of the units, for the banner."""
    from torch.distributed.fsdp import fully_shard

    backbone = getattr(model, "backbone", None)
    units = list(backbone.fsdp_units()) if backbone is not None and hasattr(backbone, "fsdp_units") else []
    head = getattr(model, "head", None)
    if head is not None and any(True for _ in head.parameters()):
        units.append(head)
    names = {id(m): n for n, m in model.named_modules()}
    reshard = cfg.fsdp_reshard_after_forward
    for unit in units:
        fully_shard(unit, reshard_after_forward=reshard)
    fully_shard(model, reshard_after_forward=reshard)
    return [names.get(id(u), type(u).__name__) for u in units]


def all_reduce_gradients(params: list[nn.Parameter], dist: Distributed) -> None:
    """Average gradients over ranks by hand, for steps that bypass the DDP
    wrapper (a head trained on cached features): one flat all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or not dist.enabled:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def is_sharded(model: nn.Module) -> bool:
    """Whether FSDP2 sharded ``model``'s parameters."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without FSDP2
        return False
    return isinstance(model, FSDPModule)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights: a plain ``state_dict`` or, for an
    FSDP-sharded model, the shards gathered to the CPU of rank 0 (a
    collective: every rank calls it; other ranks get an empty dict)."""
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
