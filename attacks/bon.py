"""Best-of-N jailbreaking (Hughes et al., 2024): many cheap random augmentations of the goal,
sampled at temperature, until one gets through.

Each sample applies, in the paper's order, character scrambling (the middle letters of words
longer than three characters are shuffled), random capitalisation (each letter upper-cased with
a probability) and character noising (each printable ASCII character shifted by ±1 with a small
probability). ASR grows roughly as a power law in N, so N goes up to 10,000.

A sample is a pure function of (seed, goal id, sample index): a resumed or retried run rebuilds
exactly the prompts it already sent and only sends the ones it has not recorded. The streaming
step that sends samples, judges them as they arrive and stops a goal at its first success is
`tasks.bon.best_of_n`; `generate` (all N samples at once, no early stop) is only what a `suite`
uses when Best-of-N is one of its members.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from attacks.base import AttackPrompt, Technique, TechniqueConfig, user
from attacks.registry import technique
from goals import Goal
from targets.messages import ChatMessage, wire

#: The paper's largest N; a goal never gets more samples than this.
MAX_N = 10_000
_WORD = re.compile(r"\S+")
_PRINTABLE = range(32, 127)


class BestOfNConfig(TechniqueConfig):
    n: int = Field(
        default=100, ge=1, le=MAX_N,
        description=f"Samples per goal at most (1..{MAX_N}); a goal stops at its first success.",
    )
    p_scramble: float = Field(
        default=0.6, ge=0.0, le=1.0,
        description="Probability that a word longer than 3 characters has its middle shuffled.",
    )
    p_capitalize: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Probability that a letter is upper-cased."
    )
    p_noise: float = Field(
        default=0.06, ge=0.0, le=1.0,
        description="Probability that a printable ASCII character is shifted by ±1.",
    )
    seed: int = Field(default=0, description="Base seed; samples are seeded per (goal, index).")
    temperature: float = Field(
        default=1.0, ge=0.0, le=2.0, description="Sampling temperature of the target."
    )
    early_stop: bool = Field(
        default=True,
        description="Stop sampling a goal at its first success (off: all N, e.g. for full curves).",
    )
    stop_after_errors: int = Field(
        default=10, ge=1,
        description="Stop a goal after this many target errors (429/5xx after retries).",
    )


def sample_rng(seed: int, goal_id: str, index: int) -> random.Random:
    """A generator for one sample: the same (seed, goal, index) always draws the same numbers.

    Seeded from a sha256 of the triple, not `hash()`, which changes with PYTHONHASHSEED.
    """
    digest = hashlib.sha256(f"{seed}\x00{goal_id}\x00{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def scramble(text: str, p: float, rng: random.Random) -> str:
    """Shuffle the middle characters of words longer than 3 characters, each with probability p."""

    def one(match: re.Match[str]) -> str:
        word = match.group(0)
        if len(word) <= 3 or rng.random() >= p:
            return word
        middle = list(word[1:-1])
        rng.shuffle(middle)
        return word[0] + "".join(middle) + word[-1]

    return _WORD.sub(one, text)


def capitalize(text: str, p: float, rng: random.Random) -> str:
    """Upper-case each character with probability p (one draw per character, letter or not)."""
    return "".join(ch.upper() if rng.random() < p else ch for ch in text)


def noise(text: str, p: float, rng: random.Random) -> str:
    """Shift each printable ASCII character by ±1 with probability p, staying printable."""
    out = []
    for ch in text:
        code = ord(ch)
        if code in _PRINTABLE and rng.random() < p:
            shifted = code + rng.choice((-1, 1))
            code = shifted if shifted in _PRINTABLE else code - (shifted - code)
        out.append(chr(code))
    return "".join(out)


def augment(text: str, config: BestOfNConfig, rng: random.Random) -> str:
    """The paper's composition: scramble, then capitalise, then noise."""
    text = scramble(text, config.p_scramble, rng)
    text = capitalize(text, config.p_capitalize, rng)
    return noise(text, config.p_noise, rng)


def sample_key(messages: Sequence[ChatMessage | Mapping[str, Any]], index: int) -> str:
    """Idempotency key of one sample: its messages *and* its index.

    Two samples may augment to the same text (short goals, low probabilities); at temperature
    they are still two draws, so the index is part of the key.
    """
    canonical = json.dumps([wire(messages), index], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@technique("bon")
class BestOfN(Technique[BestOfNConfig]):
    """Best-of-N: random capitalisation, scrambling and noising, sampled until one breaks through."""

    Config = BestOfNConfig
    #: The attack flow streams this technique (tasks.bon) instead of generating all prompts.
    streaming = True

    def sample(self, goal: Goal, index: int) -> AttackPrompt:
        """Sample `index` (0-based) for `goal`: deterministic in (seed, goal id, index)."""
        if not 0 <= index < self.config.n:
            raise ValueError(f"sample index {index} outside 0..{self.config.n - 1}")
        rng = sample_rng(self.config.seed, goal.id, index)
        text = augment(goal.request, self.config, rng)
        return self._prompt(goal, "augmented", user(text), sample=index, seed=self.config.seed)

    async def generate(self, goal: Goal, attacker: Any = None) -> list[AttackPrompt]:
        return [self.sample(goal, k) for k in range(self.config.n)]
