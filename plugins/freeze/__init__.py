"""Built-in freeze strategies: which weights move, how fast and when.

Each strategy is a :class:`ft.FreezeStrategy` registered by name with
validated options (``[freeze]`` in a recipe). This module registers them;
each lives in its own module with the paper it follows. See
docs/freeze_strategies.md for the table of strategies and options.

Nothing heavy is imported here: ``lora`` imports peft only when used.
"""

from __future__ import annotations

import ft
from ft.specs import FreezeStrategySpec

from .adabn import AdaBNOptions, AdaBNStrategy
from .basic import FullStrategy, LinearProbeStrategy, NoOptions
from .l2sp import L2SPOptions, L2SPStrategy
from .layerwise import DiscriminativeLrOptions, DiscriminativeLrStrategy
from .lora import LoraOptions, LoraStrategy
from .partial import BitFitStrategy, FreezeBottomOptions, FreezeBottomStrategy
from .schedules import GradualUnfreezeOptions, GradualUnfreezeStrategy, LpFtOptions, LpFtStrategy


@ft.hookimpl
def ft_freeze_strategies() -> list[FreezeStrategySpec]:
    return [
        FreezeStrategySpec("full", lambda opts, ctx: FullStrategy(), NoOptions,
                           description="everything trains"),
        FreezeStrategySpec("linear_probe", lambda opts, ctx: LinearProbeStrategy(), NoOptions,
                           description="backbone frozen (eval mode), head trains"),
        FreezeStrategySpec("freeze_bottom", lambda opts, ctx: FreezeBottomStrategy(opts), FreezeBottomOptions,
                           description="first n backbone layer groups frozen, the rest and the head train"),
        FreezeStrategySpec("gradual_unfreeze", lambda opts, ctx: GradualUnfreezeStrategy(opts),
                           GradualUnfreezeOptions,
                           description="ULMFiT: head first, then one backbone group more from the top every "
                                       "`every` epochs"),
        FreezeStrategySpec("discriminative_lr", lambda opts, ctx: DiscriminativeLrStrategy(opts),
                           DiscriminativeLrOptions,
                           description="everything trains, learning rates decay geometrically from the head down"),
        FreezeStrategySpec("lp_ft", lambda opts, ctx: LpFtStrategy(opts), LpFtOptions,
                           description="linear probe for probe_epochs, then full fine-tuning at a lower rate"),
        FreezeStrategySpec("bitfit", lambda opts, ctx: BitFitStrategy(opts), NoOptions,
                           description="only the backbone's biases and the head train"),
        FreezeStrategySpec("lora", lambda opts, ctx: LoraStrategy(opts, seed=ctx.seed), LoraOptions,
                           description="low-rank adapters (peft) on the backbone's nn.Linear layers, or on its "
                                       "convolutions when it has none, plus the head"),
        FreezeStrategySpec("l2sp", lambda opts, ctx: L2SPStrategy(opts), L2SPOptions,
                           description="full fine-tuning with an L2 pull toward the pretrained weights"),
        FreezeStrategySpec("adabn", lambda opts, ctx: AdaBNStrategy(opts), AdaBNOptions,
                           description="train on source data, then re-estimate BatchNorm statistics on "
                                       "target-domain inputs"),
    ]
