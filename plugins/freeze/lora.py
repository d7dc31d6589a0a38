"""``lora``: low-rank adapters on the backbone's linear layers, via ``peft``.

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models": each
chosen ``nn.Linear`` keeps its pretrained weight ``W`` frozen and learns
``W + (alpha / r) * B @ A`` with ``A`` (r x in) and ``B`` (out x r, zero at
start, so training starts from the pretrained function). Only the adapters
and the head train: a fraction of a percent to a few percent of the weights.

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

import torch
from pydantic import Field
from torch import nn

from ft.errors import FtError
from ft.specs import Options

from ._split import split_model, strategy_error
from .basic import ConfiguredStrategy


class LoraOptions(Options):
    """Options of ``lora``."""

    r: int = Field(8, ge=1, description="rank of the adapters")
    alpha: float = Field(16.0, gt=0, description="scaling: the adapter update is multiplied by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapters' input")
    target_modules: list[str] | None = Field(
        None, description="name suffixes of the backbone's nn.Linear layers to adapt, e.g. ['q', 'v'] "
                          "(a name matches if it equals the suffix or ends with '.' + suffix); "
                          "unset = every nn.Linear of the backbone")
    exclude: list[str] = Field(default_factory=list,
                               description="name suffixes of nn.Linear layers to leave without adapters")


def _matches(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def _matches_prefix(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _is_lora_layer(module: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


class LoraStrategy(ConfiguredStrategy):
    """LoRA adapters on the backbone's linear layers; adapters and head train."""

    name = "lora"
    options: LoraOptions

    def __init__(self, options: LoraOptions, seed: int = 0):
        super().__init__(options)
        self.seed = seed
        if importlib.util.find_spec("peft") is None:
            raise FtError("freeze strategy 'lora' needs peft, which is not installed", where="freeze.strategy = 'lora'",
                          hint="pip install 'ftkit[lora]'")

    def targets(self, backbone: nn.Module) -> list[str]:
        """Full names of the backbone's nn.Linear layers that get adapters.

        Layers under the backbone's ``always_frozen`` prefixes are skipped: the
        engine re-freezes everything there, adapters included.
        """
        pinned = tuple(getattr(backbone, "always_frozen", ()) or ())
        linear = [name for name, m in backbone.named_modules()
                  if isinstance(m, nn.Linear) and not any(_matches_prefix(name, p) for p in pinned)]
        if not linear:
            outside = " outside its always_frozen parts" if pinned else ""
            raise strategy_error(self.name, f"backbone {type(backbone).__name__} has no nn.Linear layers{outside} "
                                            f"to adapt",
                                 hint="use 'bitfit', 'freeze_bottom' or 'linear_probe' for this backbone")
        all_names = [name for name, _ in backbone.named_modules() if name]
        shown = ", ".join(linear[:16]) + (", ..." if len(linear) > 16 else "")
        for option, suffixes in (("target_modules", self.options.target_modules or []),
                                 ("exclude", self.options.exclude)):
            for suffix in suffixes:
                if not any(_matches(n, suffix) for n in linear):
                    what = "names only non-Linear modules" if any(_matches(n, suffix) for n in all_names) \
                        else "matches no module"
                    raise strategy_error(self.name, f"{suffix!r} {what} of backbone {type(backbone).__name__}; "
                                                    f"its nn.Linear layers are: {shown}", option=option,
                                         hint="give name suffixes of nn.Linear layers, e.g. 'q' for 'blocks.0.attn.q'")
        chosen = [n for n in linear if self.options.target_modules is None
                  or any(_matches(n, s) for s in self.options.target_modules)]
        chosen = [n for n in chosen if not any(_matches(n, s) for s in self.options.exclude)]
        if not chosen:
            raise strategy_error(self.name, f"target_modules and exclude leave no nn.Linear layer to adapt "
                                            f"(the backbone's are: {shown})", option="exclude")
        return chosen

    def apply(self, model: nn.Module) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        split = split_model(model, self.name)
        backbone = split.backbone
        if not any(_is_lora_layer(m) for m in backbone.modules()):  # applying twice must not stack adapters
            names = self.targets(backbone)
            # an exact, anchored pattern: peft treats a string as a full-match regex, whereas a list of names
            # is matched by suffix and could catch a deeper module whose name ends the same way
            pattern = "^(?:" + "|".join(re.escape(n) for n in names) + ")$"
            config = LoraConfig(r=self.options.r, lora_alpha=self.options.alpha, lora_dropout=self.options.dropout,
                                target_modules=pattern, bias="none")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                inject_adapter_in_model(config, backbone)
        model.requires_grad_(False)
        for name, p in backbone.named_parameters():
            p.requires_grad_(".lora_" in f".{name}")
        split.head.requires_grad_(True)
        split_model(model, self.name)  # the backbone's layer groups must still cover the adapters

    def export(self, model: nn.Module) -> nn.Module:
        """A copy with the adapters merged into the base weights and removed:
        plain nn.Linear layers again, the same outputs, no peft needed to run."""
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
