"""Built-in freeze strategies: which weights move, how fast and when.

Each strategy is a :class:`ft.FreezeStrategy` registered by name with
validated options. This module registers them; each lives in its own module.
"""

from __future__ import annotations

import ft
from ft.specs import FreezeStrategySpec

from .basic import FullStrategy, LinearProbeStrategy, NoOptions


@ft.hookimpl
def ft_freeze_strategies() -> list[FreezeStrategySpec]:
    return [
        FreezeStrategySpec("full", lambda opts, ctx: FullStrategy(), NoOptions,
                           description="everything trains"),
        FreezeStrategySpec("linear_probe", lambda opts, ctx: LinearProbeStrategy(), NoOptions,
                           description="backbone frozen (eval mode), head trains"),
    ]
