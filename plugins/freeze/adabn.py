"""``adabn``: adapt BatchNorm statistics to the target domain, without labels.

Li, Wang, Shi, Liu & Hou 2016, "Revisiting Batch Normalization For Practical
Domain Adaptation" (AdaBN). A network trained on a source domain keeps its
weights; only the BatchNorm running mean and variance are re-estimated on
target-domain inputs. Domain shift that shows up as shifted or rescaled
activations (a new camera, microphone, site, scanner) is then normalised
away, with no target labels and no gradient step.

Training on the source data is ``base`` (``full`` or ``linear_probe``).
After training, with the best weights loaded and before the final evaluation
(``finish``), every BatchNorm of the backbone forgets its statistics and
re-estimates them over the ``source`` split (``unlabeled``: the data
format's unlabeled target-domain data; or ``val`` / ``test`` when those
splits are the target domain). Targets in that split are ignored.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader, default_collate

from ft.contracts import batch_size_of, move_to
from ft.data import ShardedBatches, consecutive_batches
from ft.distributed import Distributed, get_distributed
from ft.specs import Options

from ._split import batch_norms, split_model, strategy_error
from .basic import ConfiguredStrategy


class AdaBNOptions(Options):
    """Options of ``adabn``."""

    source: Literal["unlabeled", "val", "test"] = Field(
        "unlabeled", description="split whose inputs (labels ignored) the BatchNorm statistics are re-estimated on")
    base: Literal["full", "linear_probe"] = Field(
        "full", description="how the model trains on the source data before adapting")
    batch_size: int = Field(64, ge=2, description="batch size of the statistics pass")


@torch.no_grad()
def adapt_batch_norm(backbone: nn.Module, dataset: Any, device: torch.device, *, batch_size: int = 64,
                     collate: Callable[[list], Any] | None = None, dist: Distributed | None = None) -> int:
    """Reset every BatchNorm of ``backbone`` and re-estimate its running
    statistics over ``dataset`` (``(inputs, target)`` pairs; targets ignored).

    The running mean is the exact mean over all examples (a one-example
    last batch joins the one before it) and the running
    variance the example-weighted mean of the batches' (unbiased) variances:
    each batch's statistics are taken on their own (momentum 1) and averaged
    with weights by batch size (PyTorch's ``momentum=None`` weights every
    batch equally, which over-weights a short last batch). Only BatchNorm
    layers are in train mode during the pass, so dropout does not perturb
    the statistics. Under DDP each rank runs its share of the batches and
    the batches' statistics are combined in split order, so the result is
    the one a single process computes. Returns the number of examples used.
    """
    dist = dist or get_distributed()
    norms = batch_norms(backbone)
    modes = {m: m.training for m in backbone.modules()}
    momenta = [m.momentum for m in norms]
    collate = collate or default_collate
    batches = consecutive_batches(list(range(len(dataset))), batch_size)
    if len(batches) > 1 and len(batches[-1]) == 1:  # one example has no batch variance (BatchNorm1d rejects it)
        batches[-2] += batches.pop()
    # even: ranks short of a batch repeat one (not measured), so FSDP ranks gather weights in step
    sampler = ShardedBatches(len(dataset), batch_size, dist.rank, dist.world_size, even=dist.enabled,
                             batches=batches)
    # targets may be absent or meaningless in unlabeled data; only the inputs are used
    loader = DataLoader(dataset, batch_sampler=sampler,
                        collate_fn=lambda batch: collate([(inputs, 0) for inputs, _ in batch]))
    backbone.eval()
    for m in norms:
        m.reset_running_stats()
        m.train()
        m.momentum = 1.0  # the running statistics become this batch's
    measured = []
    try:
        for position, (inputs, _) in zip(sampler.positions, loader):
            n = batch_size_of(inputs)
            backbone(move_to(inputs, device))
            if position is None:
                continue
            measured.append((position, n, [(m.running_mean.double().cpu(), m.running_var.double().cpu())
                                           for m in norms]))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        for m, training in modes.items():
            m.train(training)
    if sampler.sharded:
        measured = [batch for shard in dist.all_gather_object(measured) for batch in shard]
    measured.sort(key=lambda batch: batch[0])
    seen = sum(n for _, n, _ in measured)
    for i, m in enumerate(norms):
        mean = sum(n * stats[i][0] for _, n, stats in measured) / seen
        var = sum(n * stats[i][1] for _, n, stats in measured) / seen
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.num_batches_tracked.fill_(len(measured))
    return seen


class AdaBNStrategy(ConfiguredStrategy):
    """Train on the source data (``base``), then re-estimate the backbone's
    BatchNorm statistics on target-domain inputs."""

    name = "adabn"
    options: AdaBNOptions

    def apply(self, model: nn.Module) -> None:
        split = split_model(model, self.name)
        if not batch_norms(split.backbone):
            raise strategy_error(self.name, f"backbone {type(split.backbone).__name__} has no BatchNorm layer with "
                                            f"running statistics, so there is nothing to adapt",
                                 hint="AdaBN only helps BatchNorm networks (CNNs); for LayerNorm models use "
                                      "'full', 'lp_ft' or 'l2sp'")
        model.requires_grad_(True)
        if self.options.base == "linear_probe":
            split.backbone.requires_grad_(False)

    def backbone_frozen(self, epoch: int) -> bool:
        return self.options.base == "linear_probe"

    def target_data(self, data: Any) -> Any:
        """The split the statistics are estimated on, or a clear error."""
        source = self.options.source
        if data is None:
            raise strategy_error(self.name, "needs the run's data (a DataBundle) to adapt on; got none",
                                 hint="use ft.run with a recipe, or pass data= to ft.Trainer")
        dataset = getattr(data, source, None)
        if dataset is None or len(dataset) == 0:
            present = [s for s in ("unlabeled", "val", "test") if getattr(data, s, None) is not None]
            offer = ", ".join(present) if present else "none"
            raise strategy_error(self.name, f"source = {source!r} but the data has no {source!r} split "
                                            f"(splits present: {offer})", option="source",
                                 hint="point the data format at target-domain data, or set freeze.source to a "
                                      "split that holds target-domain inputs")
        return dataset

    def prepare(self, model: nn.Module, data: Any, device: torch.device) -> None:
        self.target_data(data)  # fail before training, not after

    def finish(self, model: nn.Module, data: Any, device: torch.device) -> bool:
        adapt_batch_norm(model.backbone, self.target_data(data), device, batch_size=self.options.batch_size,
                         collate=model.backbone.collate())
        return True
