"""The built-in heads' input standardisation (``input_norm = "batch"``)."""

from __future__ import annotations

import torch

from ft.contracts import BuildContext, TaskInfo
from ft.plugins import heads

TASK = TaskInfo("classification", 2, ("a", "b"))


def offset_features(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes that differ by 0.03 in one feature, on top of offsets of about 5:
    the shape of a transformer's middle-layer features."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    x = 5.0 + torch.randn(n, 16, generator=g) * 0.01
    x[:, 3] += 0.03 * labels
    return x, labels


def train(head, steps: int = 60) -> float:
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2)
    for step in range(steps):
        x, y = offset_features(64, step)
        loss = head.loss(head(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    x, y = offset_features(512, 999)
    with torch.no_grad():
        return (head(x).argmax(-1) == y).float().mean().item()


def test_input_norm_lets_a_linear_head_use_small_differences_on_large_offsets():
    torch.manual_seed(0)
    plain = heads.build_linear(heads.HeadOptions(), 16, TASK, BuildContext())
    torch.manual_seed(0)
    normed = heads.build_linear(heads.HeadOptions(input_norm="batch"), 16, TASK, BuildContext())
    assert sum(p.numel() for p in normed.parameters()) == sum(p.numel() for p in plain.parameters())
    assert train(normed) >= 0.9 > train(plain)


def test_input_norm_takes_a_training_batch_of_one_and_uses_running_statistics_in_eval():
    head = heads.build_mlp(heads.MlpOptions(input_norm="batch", hidden=[8]), 16, TASK, BuildContext())
    x, _ = offset_features(32, 0)
    head(x)  # a training batch updates the running statistics
    norm = head.body[0]
    assert torch.allclose(norm.running_mean, 0.9 * 0 + 0.1 * x.mean(0), atol=1e-5)
    before = norm.running_mean.clone()
    assert head(x[:1]).shape == (1, 2)  # the last batch of an epoch may hold one example
    assert torch.equal(norm.running_mean, before)
    head.eval()
    torch.testing.assert_close(head(x[:1]), head(x)[:1])
