"""Attack techniques: turn a goal into prompts for the target, and decode what comes back.

Techniques are registered by name (`@technique("templates")`) and built from plain config
dicts with `build_technique(name, config)`; importing this package registers the shipped ones.
"""

from attacks import (  # noqa: F401  (registration)
    advprefix,
    baseline,
    bon,
    ciphers,
    compose,
    encodings,
    many_shot,
    past_tense,
    suite,
    templates,
    translation,
)
from attacks.advprefix import AttackGenerationError, select_best
from attacks.base import (
    AttackerSpend,
    AttackPrompt,
    ChatFn,
    CompletionLike,
    DecodeError,
    Technique,
    TechniqueConfig,
    attacker_spend,
    chat_for_model,
    prompt_hash,
)
from attacks.registry import (
    TechniqueError,
    TechniqueInfo,
    build_technique,
    get_technique,
    list_techniques,
    technique,
)

__all__ = [
    "AttackGenerationError",
    "AttackPrompt",
    "AttackerSpend",
    "ChatFn",
    "CompletionLike",
    "DecodeError",
    "Technique",
    "TechniqueConfig",
    "TechniqueError",
    "TechniqueInfo",
    "build_technique",
    "attacker_spend",
    "chat_for_model",
    "get_technique",
    "list_techniques",
    "prompt_hash",
    "select_best",
    "technique",
]
