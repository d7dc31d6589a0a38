"""Synced BatchNorm: two ranks (torchrun, CPU, gloo) with half a batch each
compute what one process computes on the whole batch: outputs, gradients
and running statistics. Outside torchrun, and in eval mode, nothing changes.

torchrun runs this file as a script (see ``_worker`` at the bottom), so the
ranks and the test build the same cases from one table.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from ft.sync_batchnorm import has_batch_norm, sync_batch_norm

WORLD = 2


def _timm_batchnorm_act() -> nn.Module:
    from timm.layers import BatchNormAct2d

    return BatchNormAct2d(3, act_layer=nn.ReLU)


class Case(NamedTuple):
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]  # the global batch
    split: tuple[int, ...] = (8, 8)  # examples per rank
    dtype: torch.dtype = torch.float32
    offset: float = 0.0  # added to the inputs: a channel mean far from zero
    ddp: bool = False  # wrap in DistributedDataParallel (else all-reduce the gradients as it would)
    tol: float = 1e-5


CASES = {
    "bn1d_NC": Case(lambda: nn.BatchNorm1d(4), (16, 4)),
    "bn1d_NCL_untracked": Case(lambda: nn.BatchNorm1d(4, track_running_stats=False), (16, 4, 5)),
    "bn2d_cumulative": Case(lambda: nn.BatchNorm2d(3, momentum=None), (16, 3, 4, 4)),
    "bn3d_no_affine": Case(lambda: nn.BatchNorm3d(2, affine=False), (8, 2, 3, 3, 3), split=(4, 4)),
    "timm_bn_act2d_relu": Case(_timm_batchnorm_act, (16, 3, 4, 4)),
    "uneven_shards": Case(lambda: nn.BatchNorm2d(3), (16, 3, 4, 4), split=(5, 11)),
    # float32 keeps a mean of 1000 to within 3e-5, which bounds any float32 BatchNorm
    "large_mean": Case(lambda: nn.BatchNorm1d(4), (64, 4), split=(32, 32), offset=1000.0, tol=1e-4),
    "linear_bn1d_ddp": Case(lambda: nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)), (16, 5), ddp=True),
    "bn2d_bfloat16": Case(lambda: nn.BatchNorm2d(3), (16, 3, 4, 4), dtype=torch.bfloat16, tol=2e-2),
}


def _bounds(case: Case) -> list[tuple[int, int]]:
    starts = [sum(case.split[:r]) for r in range(WORLD)]
    return [(lo, lo + n) for lo, n in zip(starts, case.split)]


def _make_inputs() -> dict:
    """Per case: starting weights and buffers (random, so nothing is 0 or 1),
    two global batches, and a fixed random probe that weights each output in
    the loss so that every gradient is non-trivial."""
    torch.manual_seed(0)
    data = {}
    for name, case in CASES.items():
        module = case.build()
        with torch.no_grad():
            for param_name, p in module.named_parameters():
                p.copy_(torch.rand_like(p) + 0.5 if param_name.endswith("weight") else torch.randn_like(p))
            for buffer_name, b in module.named_buffers():
                if buffer_name.endswith("running_mean"):
                    b.copy_(torch.randn_like(b))
                elif buffer_name.endswith("running_var"):
                    b.copy_(torch.rand_like(b) + 0.5)
        init = {k: v.clone() for k, v in module.state_dict().items()}
        # Channel means apart and a drift along the batch (as in an unshuffled
        # dataset): each rank's own statistics are visibly not the global ones.
        per_channel = torch.randn(case.shape[1]).view(1, -1, *[1] * (len(case.shape) - 2))
        drift = torch.linspace(-2, 2, case.shape[0]).view(-1, *[1] * (len(case.shape) - 1))
        steps = [torch.randn(case.shape) * 2 + per_channel + drift + case.offset for _ in range(2)]
        with torch.no_grad():
            out_shape = module(steps[0]).shape
        data[name] = {"init": init, "steps": steps, "probes": [torch.randn(out_shape) for _ in steps]}
    return data


def _reference(case: Case, data: dict) -> tuple[list[dict], dict]:
    """One process, the whole batch, float64, torch's own F.batch_norm.

    A rank's loss is the mean over its own examples, but through the global
    statistics it depends on every rank's examples; so each rank's input
    gradient is that of the sum of all ranks' losses (as torch.nn.SyncBatchNorm
    has it). DDP averages the parameter gradients: those of that sum / WORLD.
    """
    module = case.build()
    module.load_state_dict(data["init"])
    module.double()
    names = [n for n, _ in module.named_parameters()]
    params = list(module.parameters())
    steps = []
    for x_global, probe in zip(data["steps"], data["probes"]):
        x = x_global.to(case.dtype).double().requires_grad_()  # the values the ranks see
        y = module(x)
        loss = sum((y[lo:hi] * probe[lo:hi].double()).mean() for lo, hi in _bounds(case))
        x_grad, *p_grads = torch.autograd.grad(loss, [x, *params])
        steps.append({"y": y.detach(), "x_grad": x_grad, "grads": {n: g / WORLD for n, g in zip(names, p_grads)}})
    return steps, module.state_dict()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run every case on two torchrun ranks once; each rank's results by case."""
    folder = tmp_path_factory.mktemp("sync_batchnorm")
    torch.save(_make_inputs(), folder / "inputs.pt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = Path(sys.executable).with_name("torchrun")
    out = subprocess.run([str(torchrun), "--nproc_per_node", str(WORLD), "--master_addr", "127.0.0.1",
                          "--master_port", str(port), __file__, str(folder)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    inputs = torch.load(folder / "inputs.pt")
    ranks = [torch.load(folder / f"rank{r}.pt") for r in range(WORLD)]
    return inputs, ranks


def _close(actual, expected, tol):
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_equal_one_process_on_the_global_batch(two_ranks, name):
    inputs, ranks = two_ranks
    case = CASES[name]
    want_steps, want_state = _reference(case, inputs[name])
    for step, want in enumerate(want_steps):
        got = [rank[name]["steps"][step] for rank in ranks]
        assert all(g["y"].dtype == case.dtype for g in got)
        _close(torch.cat([g["y"] for g in got]), want["y"], case.tol)
        _close(torch.cat([g["x_grad"] for g in got]), want["x_grad"], case.tol)
        for param, grad in want["grads"].items():
            for g in got:  # every rank holds the same averaged gradient
                _close(g["grads"][param], grad, case.tol)
    for rank in ranks:
        state = rank[name]["state"]
        assert state.keys() == want_state.keys()
        for key, value in want_state.items():
            _close(state[key], value, 1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_without_the_context_each_rank_uses_its_own_statistics(two_ranks, name):
    """The comparison above can tell: unsynced, the ranks miss the global
    batch's outputs by far more than its tolerance."""
    inputs, ranks = two_ranks
    want = _reference(CASES[name], inputs[name])[0][0]["y"]
    unsynced = torch.cat([rank[name]["unsynced"] for rank in ranks]).double()
    assert (unsynced - want).abs().max() > 10 * CASES[name].tol


def test_activation_of_timm_batchnorm_act_is_kept(two_ranks):
    _, ranks = two_ranks
    y = torch.cat([rank["timm_bn_act2d_relu"]["steps"][0]["y"] for rank in ranks])
    assert y.min() == 0 and 0.2 < (y == 0).float().mean() < 0.8  # ReLU clipped about half


def test_statistics_stay_accurate_for_a_large_mean(two_ranks):
    """E[x^2] - E[x]^2 in float32 loses the variance of inputs around 1000;
    the synced variance (seen through the running variance) keeps it."""
    inputs, ranks = two_ranks
    x = inputs["large_mean"]["steps"][0]
    naive = (x * x).mean(0) - x.mean(0) ** 2
    exact = x.double().var(0, unbiased=False)
    assert ((naive - exact).abs() / exact).max() > 1e-3
    _, want_state = _reference(CASES["large_mean"], inputs["large_mean"])
    got = ranks[0]["large_mean"]["state"]["running_var"].double()
    assert ((got - want_state["running_var"]).abs() / want_state["running_var"]).max() < 1e-5


def test_eval_mode_is_unchanged_under_torchrun(two_ranks):
    _, ranks = two_ranks
    checked = [rank[name]["eval_identical"] for rank in ranks for name in CASES if name != "bn1d_NCL_untracked"]
    assert checked == [True] * (WORLD * (len(CASES) - 1))


# single process: nothing to sync, so the context must change nothing


@pytest.mark.parametrize("make, shape", [(lambda: nn.BatchNorm1d(4), (6, 4)),
                                         (lambda: nn.BatchNorm2d(4, momentum=None), (6, 4, 3, 3))])
def test_outside_distributed_results_are_bit_identical(make, shape):
    torch.manual_seed(0)
    x = torch.randn(shape) + 1
    plain, synced = make(), make()
    for training in (True, False):  # eval second: with the running statistics of the training step
        plain.train(training)
        synced.train(training)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya = plain(xa)
        with sync_batch_norm():
            yb = synced(xb)
        ya.square().sum().backward()
        yb.square().sum().backward()
        assert torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad)
        assert torch.equal(plain.weight.grad, synced.weight.grad)
        for a, b in zip(plain.buffers(), synced.buffers()):
            assert torch.equal(a, b)


def test_the_patch_is_removed_on_exit_even_after_an_error():
    original = F.batch_norm
    with sync_batch_norm():
        assert F.batch_norm is not original
        outer = F.batch_norm
        with sync_batch_norm():  # nesting: the inner exit puts the outer patch back
            assert F.batch_norm not in (original, outer)
        assert F.batch_norm is outer
    assert F.batch_norm is original
    with pytest.raises(RuntimeError, match="boom"):
        with sync_batch_norm():
            raise RuntimeError("boom")
    assert F.batch_norm is original


def test_has_batch_norm():
    assert has_batch_norm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.BatchNorm2d(4))))
    assert has_batch_norm(_timm_batchnorm_act())
    assert not has_batch_norm(nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.GroupNorm(2, 4),
                                            nn.InstanceNorm2d(4)))


def _worker(folder: Path) -> None:
    """One torchrun rank: run every case on this rank's slice of the batch."""
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    inputs = torch.load(folder / "inputs.pt")
    results = {}
    for name, case in CASES.items():
        data = inputs[name]
        lo, hi = _bounds(case)[rank]
        module = case.build()
        module.load_state_dict(data["init"])
        unsynced = module(data["steps"][0][lo:hi].to(case.dtype)).detach()
        module.load_state_dict(data["init"])  # undo that step's running statistics
        model = DistributedDataParallel(module, broadcast_buffers=False) if case.ddp else module
        steps = []
        for x_global, probe in zip(data["steps"], data["probes"]):
            x = x_global[lo:hi].to(case.dtype).requires_grad_()
            with sync_batch_norm():
                y = model(x)
            (y.float() * probe[lo:hi]).mean().backward()
            grads = {n: p.grad.clone() for n, p in module.named_parameters()}
            if not case.ddp:  # what DDP does: average the ranks' gradients
                for g in grads.values():
                    dist.all_reduce(g)
                    g /= dist.get_world_size()
            module.zero_grad()
            steps.append({"y": y.detach(), "x_grad": x.grad, "grads": grads})
        # eval mode with running statistics: the context must change nothing
        # (without them, eval mode normalises with batch statistics)
        eval_identical = None
        if list(module.buffers()):
            module.eval()
            with torch.no_grad():
                plain = module(x.detach())
                with sync_batch_norm():
                    eval_identical = torch.equal(module(x.detach()), plain)
        results[name] = {"steps": steps, "state": module.state_dict(), "unsynced": unsynced,
                         "eval_identical": eval_identical}
    torch.save(results, folder / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
