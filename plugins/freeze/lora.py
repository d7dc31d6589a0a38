"""``lora``: low-rank adapters on the backbone's linear and convolution layers, via ``peft``.

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models": each
chosen ``nn.Linear`` keeps its pretrained weight ``W`` frozen and learns
``W + (alpha / r) * B @ A`` with ``A`` (r x in) and ``B`` (out x r, zero at
start, so training starts from the pretrained function). Only the adapters
and the head train: a fraction of a percent to a few percent of the weights.
A convolution gets the same update as peft builds it: ``A`` is a convolution
with the layer's kernel, stride and padding to ``r`` channels, ``B`` a 1x1
convolution back, and ``B * A`` merges into one kernel of the layer's shape.

What peft can adapt with an adapter that merges back: ``nn.Linear``, and
``nn.Conv1d/2d/3d`` with ``groups=1``, no dilation, zero padding, the stock
``forward`` and a plain weight. Grouped and depthwise convolutions are out
(peft 0.21 runs them only when ``r`` is a multiple of ``groups`` and cannot
merge them), and so are recurrent layers (peft has no LoRA for ``nn.LSTM``).
Left to itself the strategy adapts every ``nn.Linear`` of the backbone, or,
when it has none (a CNN), every convolution it can; recurrent and other
layers it cannot adapt stay frozen and are listed in ``describe()``.

The adapters are injected in place into ``model.backbone`` with
``peft.inject_adapter_in_model``, not by wrapping the model in a
``PeftModel``: the FtModel keeps its structure and the backbone's
``layer_groups()`` prefixes still match (``block1.0.weight`` becomes
``block1.0.base_layer.weight`` plus ``block1.0.lora_A.default.weight``).
Injection is deterministic (same layers, adapter init drawn from a generator
seeded with the run's seed, leaving the global RNG untouched), because
``ft.load_run`` re-applies the strategy before loading the saved weights.
``export`` merges the adapters into the base weights and removes them.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from dataclasses import dataclass, field

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils import parametrize

from ft.errors import FtError
from ft.specs import Options

from ._split import split_model, strategy_error
from .basic import ConfiguredStrategy

#: the convolution classes peft's LoRA adapts (_conv_problem() says which of their layers it can merge)
CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
ADAPTS = "nn.Linear and ungrouped nn.Conv1d/2d/3d layers"
RECURRENT_HINT = ("use 'freeze_bottom', 'lp_ft', 'l2sp' or 'full' for this backbone: they train the recurrent "
                  "weights themselves")


class LoraOptions(Options):
    """Options of ``lora``."""

    r: int = Field(8, ge=1, description="rank of the adapters")
    alpha: float = Field(16.0, gt=0, description="scaling: the adapter update is multiplied by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapters' input")
    target_modules: list[str] | None = Field(
        None, description="name suffixes of the backbone layers to adapt, e.g. ['q', 'v'] or ['conv_pw'] "
                          "(a name matches if it equals the suffix or ends with '.' + suffix); adaptable: "
                          "nn.Linear and nn.Conv1d/2d/3d with groups=1 (no grouped/depthwise, dilated or "
                          "non-zero-padded convolutions, no nn.LSTM/GRU/RNN); unset = every nn.Linear of the "
                          "backbone, or, if it has none (a CNN), every adaptable convolution")
    exclude: list[str] = Field(default_factory=list,
                               description="name suffixes of layers to leave without adapters")


def _matches(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def _matches_prefix(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _is_lora_layer(module: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def _conv_problem(conv: nn.Module) -> tuple[str, str] | None:
    """``(what the layer is, why peft's LoRA cannot give it an adapter that
    merges back into the same outputs)``, or None if it can.

    peft builds the adapter's first convolution from the layer's kernel size,
    stride and padding only, as ``type(conv)(in, r, kernel, stride, padding)``,
    and merges by adding ``B * A`` to ``conv.weight``.
    """
    stock = next(t for t in CONV_TYPES if isinstance(conv, t))
    if conv.groups > 1:
        kind = "depthwise" if conv.groups == conv.in_channels else "grouped"
        return f"{kind} conv, groups={conv.groups}", "peft cannot merge adapters of grouped convolutions"
    if any(d != 1 for d in conv.dilation):
        return (f"dilated conv, dilation={tuple(conv.dilation)}",
                "peft's adapter ignores the dilation, so it would not see the same input window")
    if conv.padding_mode != "zeros":
        return f"conv with padding_mode={conv.padding_mode!r}", "peft's adapter pads with zeros"
    if parametrize.is_parametrized(conv) or hasattr(conv, "weight_g"):
        return "conv with a computed weight, e.g. weight norm", "a merge cannot write into a computed weight"
    if type(conv).forward is not stock.forward or type(conv)._conv_forward is not stock._conv_forward:
        return (f"{type(conv).__name__}, a conv with its own forward",
                "peft's adapter would not follow it (e.g. dynamic 'same' padding or weight standardisation)")
    return None


@dataclass
class _Layers:
    """The backbone's layers as LoRA sees them, in module order, outside its
    ``always_frozen`` parts (the engine re-freezes those, adapters included)."""

    adaptable: list[str] = field(default_factory=list)  # nn.Linear and the convolutions peft adapts and merges
    linear: list[str] = field(default_factory=list)
    blocked: dict[str, tuple[str, str]] = field(default_factory=dict)  # convolution -> its _conv_problem()
    recurrent: dict[str, str] = field(default_factory=dict)  # nn.LSTM/GRU/RNN -> its class name

    @classmethod
    def of(cls, backbone: nn.Module) -> _Layers:
        pinned = tuple(getattr(backbone, "always_frozen", ()) or ())
        layers = cls()
        for name, m in backbone.named_modules():
            if not name or any(_matches_prefix(name, p) for p in pinned):
                continue
            if isinstance(m, nn.Linear):
                layers.adaptable.append(name)
                layers.linear.append(name)
            elif isinstance(m, CONV_TYPES):
                problem = _conv_problem(m)
                if problem is None:
                    layers.adaptable.append(name)
                else:
                    layers.blocked[name] = problem
            elif isinstance(m, nn.RNNBase):
                layers.recurrent[name] = type(m).__name__
        return layers

    def default(self) -> list[str]:
        """Every nn.Linear; a backbone without any (a CNN): every adaptable convolution."""
        return self.linear or self.adaptable


def _listed(names, limit: int = 16) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


class LoraStrategy(ConfiguredStrategy):
    """LoRA adapters on the backbone's linear (or convolution) layers; adapters and head train."""

    name = "lora"
    options: LoraOptions

    def __init__(self, options: LoraOptions, seed: int = 0):
        super().__init__(options)
        self.seed = seed
        # set by apply(): the layers that got adapters, and the weight layers it cannot adapt (frozen)
        self.adapted: list[str] = []
        self.not_adaptable: list[str] = []
        if importlib.util.find_spec("peft") is None:
            raise FtError("freeze strategy 'lora' needs peft, which is not installed", where="freeze.strategy = 'lora'",
                          hint="pip install 'ftkit[lora]'")

    def targets(self, backbone: nn.Module) -> list[str]:
        """Full names of the backbone layers that get adapters (see :class:`LoraOptions`)."""
        return self._choose(backbone, _Layers.of(backbone))

    def _choose(self, backbone: nn.Module, layers: _Layers) -> list[str]:
        what = f"backbone {type(backbone).__name__}"
        if not layers.adaptable:
            raise self._nothing_to_adapt(backbone, layers)
        self._check_suffixes(what, layers, [n for n, _ in backbone.named_modules() if n])
        if self.options.target_modules is None:
            chosen = layers.default()
        else:
            chosen = [n for n in layers.adaptable if any(_matches(n, s) for s in self.options.target_modules)]
        chosen = [n for n in chosen if not self._excluded(n)]
        if not chosen:
            raise strategy_error(self.name, f"target_modules and exclude leave no layer to adapt "
                                            f"({what}'s adaptable layers are: {_listed(layers.adaptable)})",
                                 option="exclude")
        return chosen

    def _excluded(self, name: str) -> bool:
        return any(_matches(name, s) for s in self.options.exclude)

    def _nothing_to_adapt(self, backbone: nn.Module, layers: _Layers) -> FtError:
        what = f"backbone {type(backbone).__name__}"
        outside = " outside its always_frozen parts" if getattr(backbone, "always_frozen", ()) else ""
        if layers.recurrent:
            kinds = "/".join(f"nn.{k}" for k in sorted(set(layers.recurrent.values())))
            return strategy_error(self.name, f"peft cannot put LoRA adapters on {kinds}, and the weight layers of "
                                             f"{what}{outside} are recurrent ({_listed(layers.recurrent)}); "
                                             f"LoRA adapts {ADAPTS}",
                                  hint=RECURRENT_HINT)
        if layers.blocked:
            name, (kind, why) = next(iter(layers.blocked.items()))
            return strategy_error(self.name, f"{what} has no layer LoRA can adapt{outside}: none of its "
                                             f"{len(layers.blocked)} convolution(s) can take an adapter that "
                                             f"merges ({name}: {kind}; {why}); LoRA adapts {ADAPTS}",
                                  hint="use 'bitfit', 'freeze_bottom' or 'linear_probe' for this backbone")
        return strategy_error(self.name, f"{what} has no layers LoRA can adapt{outside}; LoRA adapts {ADAPTS}",
                              hint="use 'bitfit', 'freeze_bottom' or 'linear_probe' for this backbone")

    def _check_suffixes(self, what: str, layers: _Layers, all_names: list[str]) -> None:
        """Every suffix must name an adaptable layer. A target that also names
        a convolution peft cannot adapt is refused, not quietly narrowed."""
        shown = f"the layers it can adapt ({ADAPTS}) are: {_listed(layers.adaptable)}"
        for suffix in self.options.target_modules or []:
            refused = [n for n in layers.blocked if _matches(n, suffix) and not self._excluded(n)]
            if refused:
                kind, why = layers.blocked[refused[0]]
                more = f" (and {len(refused) - 1} more like it)" if len(refused) > 1 else ""
                raise strategy_error(self.name, f"{suffix!r} selects {refused[0]} of {what}{more}, which LoRA "
                                                f"cannot adapt ({kind}): {why}",
                                     option="target_modules",
                                     hint=f"target other layers, or exclude these; {shown}")
        for option, suffixes in (("target_modules", self.options.target_modules or []),
                                 ("exclude", self.options.exclude)):
            for suffix in suffixes:
                if any(_matches(n, suffix) for n in layers.adaptable):
                    continue
                if option == "exclude" and any(_matches(n, suffix) for n in layers.blocked):
                    continue  # excluding a layer that gets no adapter anyway is harmless
                recurrent = [n for n in layers.recurrent if _matches(n, suffix)]
                if recurrent:
                    raise strategy_error(self.name, f"{suffix!r} names {_listed(recurrent)} of {what}, an "
                                                    f"nn.{layers.recurrent[recurrent[0]]}: peft cannot put LoRA "
                                                    f"adapters on recurrent layers; {shown}",
                                         option=option, hint=RECURRENT_HINT)
                found = "names only modules LoRA cannot adapt" if any(_matches(n, suffix) for n in all_names) \
                    else "matches no module"
                raise strategy_error(self.name, f"{suffix!r} {found} of {what}; {shown}", option=option,
                                     hint="give name suffixes of those layers, e.g. 'q' for 'blocks.0.attn.q'")

    def apply(self, model: nn.Module) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        split = split_model(model, self.name)
        backbone = split.backbone
        if not any(_is_lora_layer(m) for m in backbone.modules()):  # applying twice must not stack adapters
            layers = _Layers.of(backbone)
            names = self._choose(backbone, layers)
            # an exact, anchored pattern: peft treats a string as a full-match regex, whereas a list of names
            # is matched by suffix and could catch a deeper module whose name ends the same way
            pattern = "^(?:" + "|".join(re.escape(n) for n in names) + ")$"
            config = LoraConfig(r=self.options.r, lora_alpha=self.options.alpha, lora_dropout=self.options.dropout,
                                target_modules=pattern, bias="none")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                inject_adapter_in_model(config, backbone)
            self.adapted = names
            self.not_adaptable = ([f"{n} ({kind})" for n, kind in layers.recurrent.items()]
                                  + [f"{n} ({kind})" for n, (kind, _) in layers.blocked.items()])
        model.requires_grad_(False)
        for name, p in backbone.named_parameters():
            p.requires_grad_(".lora_" in f".{name}")
        split.head.requires_grad_(True)
        split_model(model, self.name)  # the backbone's layer groups must still cover the adapters

    def describe(self) -> dict:
        """The options; once applied, also how many layers got adapters and
        which recurrent or convolution layers LoRA cannot adapt (they stay frozen)."""
        out = super().describe()
        if self.adapted:
            out["adapted_layers"] = len(self.adapted)
        if self.not_adaptable:
            out["not_adaptable"] = _listed(self.not_adaptable, limit=8)
        return out

    def export(self, model: nn.Module) -> nn.Module:
        """A copy with the adapters merged into the base weights and removed:
        plain nn.Linear / nn.ConvNd layers again, the same outputs, no peft needed to run."""
        merged = copy.deepcopy(model)
        backbone = merged.backbone
        layers = [(name, m) for name, m in backbone.named_modules() if _is_lora_layer(m)]
        for name, layer in layers:
            layer.merge()
            parent_name, _, child = name.rpartition(".")
            parent = backbone.get_submodule(parent_name) if parent_name else backbone
            setattr(parent, child, layer.get_base_layer())
        if hasattr(backbone, "peft_config"):
            del backbone.peft_config
        return merged
