"""The objects plugins hand to the engine: backbones, heads, data, tasks.

Every domain answers the same calls, so the trainer and the freeze strategies
never ask which domain they serve (compare timm's uniform model protocol).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .errors import FtError

if TYPE_CHECKING:
    from .report import Report

#: The name of the head's parameter group: the last of :meth:`ft.FtModel.layer_groups`,
#: the group freeze strategies and ``optim.head_lr_mult`` treat as the head. A
#: backbone must not name one of its own layer groups this.
HEAD_GROUP = "head"


@dataclass(frozen=True)
class TaskInfo:
    """What the model predicts, inferred from the data.

    ``type`` is the recipe's ``task.type`` (``classification``,
    ``multilabel``, ``regression``, or a plugin's own such as ``ranking``);
    ``num_outputs`` the number of classes, labels, targets or items;
    ``class_names`` the label of each output where it has one; ``extra`` any
    JSON-serialisable facts a head needs (saved in the run directory).
    """

    type: str
    num_outputs: int
    class_names: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """This task as a JSON object (written to the run's ``task.json``)."""
        return {
            "type": self.type,
            "num_outputs": self.num_outputs,
            "class_names": list(self.class_names) if self.class_names else None,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict) -> "TaskInfo":
        """The task :meth:`to_json` wrote."""
        names = data.get("class_names")
        return cls(data["type"], int(data["num_outputs"]), tuple(names) if names else None, data.get("extra") or {})


@dataclass
class LayerGroup:
    """A named slice of a backbone's parameters; groups run input to output."""

    name: str
    params: list[nn.Parameter]

    @property
    def numel(self) -> int:
        """Number of weights in the group."""
        return sum(p.numel() for p in self.params)


def groups_by_prefix(module: nn.Module, spec: Sequence[tuple[str, Sequence[str]]]) -> list[LayerGroup]:
    """Build layer groups from ``(group name, [parameter-name prefixes])``.

    Every parameter must fall in exactly one group (first matching group
    wins); a parameter no prefix matches is an error, so a backbone cannot
    silently leave weights out of every freeze decision.
    """
    groups = [LayerGroup(name, []) for name, _ in spec]
    for pname, param in module.named_parameters():
        for group, (_, prefixes) in zip(groups, spec):
            if any(pname == p or pname.startswith(p + ".") or (p.endswith(".") and pname.startswith(p)) for p in prefixes):
                group.params.append(param)
                break
        else:
            raise FtError(f"parameter {pname!r} of {type(module).__name__} is in no layer group")
    return [g for g in groups if g.params]


class Backbone(nn.Module):
    """A pretrained feature extractor: inputs -> pooled features ``[B, D]``.

    Subclasses set ``feature_dim`` and implement ``forward`` and
    ``layer_groups``. Preprocessing belongs to the backbone because it is part
    of what the weights were trained with (image size and normalisation,
    tokenizer, sample rate and front end).
    """

    #: width ``D`` of the pooled features ``forward`` returns (set in ``__init__``
    #: or, for data-sized backbones, in ``bind_data``)
    feature_dim: int
    #: parameter-name prefixes that stay frozen whatever the freeze strategy
    #: does (e.g. wav2vec2's convolutional feature extractor); the engine
    #: re-freezes them after every ``FreezeStrategy.apply``
    always_frozen: tuple[str, ...] = ()

    def layer_groups(self) -> list[LayerGroup]:
        """Parameter groups ordered from input to output.

        Drives freeze-bottom-N, gradual unfreezing and discriminative
        learning rates. The default is one group holding everything.
        """
        return [LayerGroup("backbone", [p for p in self.parameters()])]

    def bind_data(self, task: "TaskInfo", info: dict) -> None:
        """Called once after the data is read (and, when a finished run is
        reloaded, with the saved ``data.json`` info) before the head is
        built: for backbones whose shape depends on the data, such as ID
        embedding tables sized by the vocabulary. May set ``feature_dim``."""

    def preprocess(self, train: bool) -> Callable[[Any], Any] | None:
        """Per-example transform from a raw example (image, text, waveform)
        to model inputs; ``train=True`` may add random augmentation."""
        return None

    def collate(self) -> Callable[[list], Any] | None:
        """Batch builder for ``(inputs, target)`` pairs; None means torch's
        default collate (stacking)."""
        return None

    def describe(self) -> dict:
        """JSON facts for the model card and cache keys (name, weights...)."""
        return {"class": type(self).__name__}

    def enable_activation_checkpointing(self) -> None:
        """Recompute activations in the backward pass instead of keeping
        them (``train.activation_checkpointing = true``): less memory for
        about one more forward pass of compute, gradients unchanged.

        A backbone that can do it overrides this: with its library's switch
        (timm's ``set_grad_checkpointing``, transformers'
        ``gradient_checkpointing_enable``) or by handing its repeated blocks
        to :func:`ft.checkpoint_modules`. The default says it cannot.
        """
        raise FtError(f"backbone {type(self).__name__} cannot checkpoint its activations",
                      hint="set train.activation_checkpointing = false")

    def tokens_in(self, inputs: Any) -> int | None:
        """Real (unpadded) tokens in a batch of inputs, for tokens/s in the
        per-epoch figures; None where tokens mean nothing (images, audio).
        Called on the CPU batch before it moves to the device."""
        return None

    def fsdp_units(self) -> list[nn.Module]:
        """Submodules that ``train.distributed = "fsdp"`` shards as one unit
        each (transformer blocks, CNN stages), input to output. Parameters
        outside them are sharded with the whole model. The default, no
        units, shards the backbone as one piece."""
        return []


class Evaluator:
    """Accumulates outputs and targets over an evaluation pass.

    Under DDP each rank evaluates its share of a split's batches and the
    ranks' evaluators are merged (:meth:`merge`), so the metrics equal one
    process's over the whole split. For that the running state must be
    additive and exact: name it in ``sums`` (counts and integer tensors
    such as a confusion matrix; float sums as :class:`ft.metrics.ExactSum`,
    whose result does not depend on the order of addition; lists, which are
    concatenated). An evaluator with no ``sums`` that does not override
    :meth:`merge` is not sharded: every rank evaluates the whole split.

    Every metric :meth:`compute` returns has a direction, declared in
    ``higher_is_better`` (``{"accuracy": True, "rmse": False}``); set it on
    the class, or on the instance in ``__init__`` when the names depend on
    options (``ndcg@10``). The trainer reads it to pick the best epoch and
    to stop early; a metric watched by ``train.monitor`` that is not
    declared is an error asking for ``train.monitor_mode``. The loss needs
    no entry: lower is better by definition.
    """

    #: attributes holding the running state, each additive (see the class docstring)
    sums: tuple[str, ...] = ()
    #: per metric name returned by :meth:`compute`: True if a larger value is better
    higher_is_better: dict[str, bool] = {}

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Fold in one batch: the model's ``outputs`` and the batch's ``targets``."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """The metrics over everything seen so far, by name (no split prefix)."""
        raise NotImplementedError

    def report(self) -> "Report | None":
        """What the run's report shows about this split beyond the metrics,
        or None (the default): an :class:`ft.report.Report` of tables
        (written as CSV, shown in the model card), figures the core draws
        (:class:`ft.report.Heatmap`, ``Scatter``, ``Curves``) and a line of
        Markdown. ft writes it to ``<run_dir>/report/`` (see
        docs/reports.md).

        Called after the final evaluation of each split (best weights
        loaded) on the evaluator of that pass, so keep what it needs in the
        running state, named in ``sums`` like the metrics' (under DDP the
        report is then one process's). Class names are the evaluator's to
        know: the head passes them when it makes the evaluator."""
        return None

    @property
    def mergeable(self) -> bool:
        """Whether :meth:`merge` can combine this evaluator's state."""
        return bool(self.sums) or type(self).merge is not Evaluator.merge

    def merge(self, other: "Evaluator") -> None:
        """Fold in ``other``'s state: the same kind of evaluator, run over
        other examples of the same split (another rank's shard). Afterwards
        this evaluator's :meth:`compute` is what one evaluator that saw both
        shards would give."""
        if not self.sums:
            raise NotImplementedError(f"{type(self).__name__} names no additive state in `sums`; "
                                      f"it cannot be merged")
        for name in self.sums:
            setattr(self, name, _added(getattr(self, name), getattr(other, name), f"{type(self).__name__}.{name}"))

    def to_cpu(self) -> "Evaluator":
        """Move tensor state to the CPU (before it travels to other ranks)."""
        for name in self.sums:
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.cpu())
        return self


def _added(mine: Any, theirs: Any, where: str) -> Any:
    if isinstance(mine, torch.Tensor):
        return mine + theirs.to(mine.device)
    if isinstance(mine, list):
        return mine + list(theirs)
    if isinstance(mine, dict):
        out = dict(mine)
        for key, value in theirs.items():
            out[key] = _added(out[key], value, f"{where}[{key!r}]") if key in out else value
        return out
    if hasattr(mine, "merge"):
        mine.merge(theirs)
        return mine
    if isinstance(mine, (int, float)) and not isinstance(mine, bool):
        return mine + theirs
    raise TypeError(f"{where}: cannot add state of type {type(mine).__name__} (override Evaluator.merge)")


class Head(nn.Module):
    """Features -> outputs, plus the task semantics of those outputs.

    Built by a :class:`ft.specs.HeadSpec` from ``(options, feature_dim,
    task, ctx)``. Its parameters form the last optimizer group,
    :data:`ft.HEAD_GROUP`. Whether a larger metric is better is the
    evaluator's to say (:attr:`Evaluator.higher_is_better`).
    """

    #: metric (a name :meth:`Evaluator.compute` returns, or ``loss``) the trainer
    #: watches on the validation split for best model / early stopping by default
    default_metric: str = "loss"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss over the examples of one batch."""
        raise NotImplementedError

    def evaluator(self) -> Evaluator:
        """A fresh evaluator for one pass over a split."""
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor, top_k: int = 3) -> list[list[tuple[str, float]]]:
        """Per example: the top predictions as ``(label, score)`` pairs."""
        raise NotImplementedError


@dataclass
class DataBundle:
    """What a dataset format returns: splits, task and data facts.

    Datasets yield ``(inputs, target)``. ``train_eval`` is the training split
    with the evaluation transform (used for frozen-feature caching; None if
    the format cannot provide it). ``unlabeled`` is optional target-domain
    data without labels (its targets are ignored; used by AdaBN).
    ``train_augmented`` says whether the
    training transform is random. ``fingerprint`` identifies the data (file
    names, sizes, options) for caches. ``info`` is saved to the run directory
    (class names, id maps, counts, skipped files). ``batcher`` optionally
    groups an epoch's shuffled training indices into batches
    (``batcher(order, batch_size, generator) -> list of index lists``; a pure
    function, e.g. length bucketing for text); None means consecutive chunks.
    It is built over the training split and never applied to evaluation.
    Under DDP it groups the whole epoch into global batches (``batch_size``
    is then the per-rank batch times the world size), which the sampler
    splits between the ranks; batches whose sizes are multiples of the
    world size split evenly.
    """

    train: Any
    val: Any | None
    test: Any | None
    task: TaskInfo
    train_augmented: bool = False
    train_eval: Any | None = None
    unlabeled: Any | None = None
    batcher: Callable[[list, int, Any], list] | None = None
    fingerprint: str = ""
    info: dict = field(default_factory=dict)


@dataclass
class BuildContext:
    """What a factory may need beyond its own options.

    ``recipe_dir``: the recipe file's folder (relative paths resolve
    against it); ``load_pretrained``: False when ftkit overwrites the
    weights anyway (a finished run reloaded), so skip reading them;
    ``seed``, ``task_type``, ``epochs`` and ``max_steps``: from the recipe.
    """

    recipe_dir: str = "."
    load_pretrained: bool = True
    seed: int = 0
    task_type: str = "classification"
    epochs: int = 1
    max_steps: int | None = None


def move_to(obj: Any, device: torch.device, non_blocking: bool = False,
            float_dtype: torch.dtype | None = None) -> Any:
    """Move tensors nested in dicts, lists and tuples to ``device`` (and
    floating-point ones to ``float_dtype`` if given)."""
    if isinstance(obj, torch.Tensor):
        if float_dtype is not None and obj.is_floating_point():
            return obj.to(device, dtype=float_dtype, non_blocking=non_blocking)
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {k: move_to(v, device, non_blocking, float_dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device, non_blocking, float_dtype) for v in obj)
    return obj


def batch_size_of(inputs: Any) -> int:
    """Number of examples in a batch's inputs or targets (first dimension)."""
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0])
    if isinstance(inputs, dict):
        return batch_size_of(next(iter(inputs.values())))
    if isinstance(inputs, (list, tuple)):
        return batch_size_of(inputs[0]) if inputs and not isinstance(inputs[0], (int, float, str)) else len(inputs)
    raise TypeError(f"cannot tell the batch size of {type(inputs).__name__}")


def iter_params(groups: Sequence[LayerGroup]) -> Iterator[nn.Parameter]:
    """The parameters of ``groups``, group by group."""
    for g in groups:
        yield from g.params
