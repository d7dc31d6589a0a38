"""Checks of the backbone capabilities every domain's tests share:
activation checkpointing leaves the loss and every gradient as they were and
really recomputes; FSDP units are disjoint submodules in forward order.

One training step is ``features . fixed random direction`` backpropagated,
so every feature (and every weight behind it) gets a gradient, even where
the features are L2-normalised.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def train_step(backbone: nn.Module, inputs: Any, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and gradients of one training-mode step from a fixed RNG state
    (dropout, SpecAugment and LayerDrop draw the same numbers each call)."""
    backbone.train()
    backbone.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    features = backbone(inputs)
    direction = torch.randn(features.shape[1:], generator=torch.Generator().manual_seed(1))
    loss = (features * direction).sum() / features.shape[0]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def count_calls(module: nn.Module) -> list[int]:
    """A one-item list counting ``module``'s forward calls from now on."""
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def checkpointed_and_plain(backbone: nn.Module, inputs: Any, probe: str, seed: int = 0) -> dict:
    """Run one step on two copies of ``backbone``, one with activation
    checkpointing, and count the calls of submodule ``probe`` (a layer inside
    a checkpointed block: it runs again in the backward pass).

    Returns the losses, gradients and probe calls of both, and the bytes
    autograd saved for backward in each forward pass.
    """
    out = {}
    for name in ("plain", "checkpointed"):
        model = copy.deepcopy(backbone)
        if name == "checkpointed":
            model.enable_activation_checkpointing()
        calls = count_calls(model.get_submodule(probe))
        saved = [0]

        def pack(tensor, saved=saved):
            saved[0] += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, grads = train_step(model, inputs, seed)
        out[name] = {"loss": loss, "grads": grads, "calls": calls[0], "saved_bytes": saved[0]}
    return out


def assert_checkpointing_exact(backbone: nn.Module, inputs: Any, probe: str, seed: int = 0) -> dict:
    """Checkpointing on = off for the loss and every gradient (tightly), the
    probe layer runs twice per step instead of once, and the forward pass
    saves fewer bytes for backward."""
    runs = checkpointed_and_plain(backbone, inputs, probe, seed)
    plain, ckpt = runs["plain"], runs["checkpointed"]
    torch.testing.assert_close(ckpt["loss"], plain["loss"], rtol=1e-6, atol=1e-7)
    assert ckpt["grads"].keys() == plain["grads"].keys() and plain["grads"]
    for name, grad in plain["grads"].items():
        torch.testing.assert_close(ckpt["grads"][name], grad, rtol=1e-5, atol=1e-7, msg=lambda m: f"{name}: {m}")
    assert (plain["calls"], ckpt["calls"]) == (1, 2), (plain["calls"], ckpt["calls"])
    assert ckpt["saved_bytes"] < plain["saved_bytes"], (ckpt["saved_bytes"], plain["saved_bytes"])
    return runs


def assert_fsdp_units(backbone: nn.Module, inputs: Any) -> list[nn.Module]:
    """Units are submodules of the backbone, none inside another, sharing no
    parameter, each with parameters, listed in the order the forward pass
    first enters them."""
    units = backbone.fsdp_units()
    members = {id(m) for m in backbone.modules()}
    assert all(id(u) in members and u is not backbone for u in units)
    owned = [{id(p) for p in u.parameters()} for u in units]
    assert all(owned), "a unit without parameters"
    assert sum(len(o) for o in owned) == len(set().union(*owned)), "units share parameters"
    for i, unit in enumerate(units):
        inner = {id(m) for m in unit.modules()} - {id(unit)}
        assert not any(id(other) in inner for other in units[:i] + units[i + 1:]), "a unit inside another"
    entered = []
    handles = [u.register_forward_pre_hook(lambda m, _: entered.append(id(m))) for u in units]
    try:
        backbone.eval()
        with torch.no_grad():
            backbone(inputs)
    finally:
        for handle in handles:
            handle.remove()
    assert list(dict.fromkeys(entered)) == [id(u) for u in units], "units not in forward order"
    return units
