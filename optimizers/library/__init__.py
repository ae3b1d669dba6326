"""Shipped optimizers and target harnesses.

Importing this package registers `passthrough`, `pair`, `tap`, `crescendo` and `injection` in
`optimizers.registry`. Harnesses (`chat`, `agent`) are looked up by `build_harness`.
"""

# imported for registration with optimizers.registry
from optimizers.library import crescendo, injection, pair, passthrough, tap  # noqa: F401 - registration
from optimizers.library.common import OptimizerConfig, parse_attack_json
from optimizers.library.crescendo import Crescendo, CrescendoConfig
from optimizers.library.harness import (
    ChatHarness,
    HarnessSpec,
    InvalidInjectionError,
    RunHooks,
    RunOutcome,
    TargetHarness,
    TurnRequest,
    UserTurn,
    build_harness,
    scope_for,
)
from optimizers.library.injection import Injection, InjectionConfig
from optimizers.library.pair import Pair, PairConfig
from optimizers.library.passthrough import Passthrough, PassthroughConfig
from optimizers.library.tap import Tap, TapConfig

__all__ = [
    "ChatHarness",
    "Crescendo",
    "CrescendoConfig",
    "HarnessSpec",
    "Injection",
    "InjectionConfig",
    "InvalidInjectionError",
    "OptimizerConfig",
    "Pair",
    "PairConfig",
    "Passthrough",
    "PassthroughConfig",
    "RunHooks",
    "RunOutcome",
    "Tap",
    "TapConfig",
    "TargetHarness",
    "TurnRequest",
    "UserTurn",
    "build_harness",
    "parse_attack_json",
    "scope_for",
]
