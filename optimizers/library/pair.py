"""PAIR: an attacker model iteratively refines one jailbreak prompt per stream.

Each run tests one prompt. Streams take turns (run k belongs to stream k mod n_streams), and each
stream keeps its own attacker conversation: the attacker sees the target's last answer and its
1-10 score, and answers `{"improvement": ..., "prompt": ...}`. The score is the run's
evaluation (judge panel) or, with `scorer="attacker"`, the attacker model rating the answer with
the PAIR judge prompt. Sequential consumption: the default `run()`.

Every attacker prompt is checked before it is sent (`AttackerOptimizer.checked_prompt`): a
placeholder such as `<the new prompt P>`, a refusal, a copy of the instructions or of the goal is
re-asked, then injected as an `AttackerFailure` — recorded, never sent as PAIR's attack.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

from pydantic import Field

from optimizers.events import ControllablePreCallEvent, RunEndEvent
from optimizers.library.common import (
    ATTACKER_SYSTEM,
    FEEDBACK,
    FIRST_TURN,
    REJECTED,
    AttackerOptimizer,
    AttackerOptimizerConfig,
    clip,
    single_turn,
    succeeded,
)
from optimizers.library.harness import AttackerFailure
from optimizers.registry import optimizer
from targets.messages import AssistantMessage, ChatMessage, SystemMessage, UserMessage

log = logging.getLogger(f"siegeflow.{__name__}")  # under "siegeflow": reaches run logs


class PairConfig(AttackerOptimizerConfig):
    n_streams: int = Field(3, ge=1, le=20, description="Independent refinement streams")
    n_iterations: int = Field(3, ge=1, le=100, description="Prompts per stream")
    keep_last_n: int = Field(3, ge=1, le=50, description="Attacker exchanges kept per stream")
    scorer: Literal["evaluation", "attacker"] = Field(
        "evaluation",
        description="Score from the run's evaluation, or from the attacker rating the answer",
    )
    success_rating: int = Field(10, ge=1, le=10, description="Done when a run scores at least this")
    parse_retries: int = Field(
        2, ge=0, le=10, description="Re-asks when the attacker's JSON is unusable"
    )
    temperature: float | None = Field(1.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1)


@optimizer("pair")
class Pair(AttackerOptimizer):
    """PAIR: attacker LLM refines a prompt per stream from the target's answers and scores."""

    Config = PairConfig
    needs_attacker: ClassVar[bool] = True
    consumption: ClassVar[str] = "sequential"

    def __init__(self, config: PairConfig | None = None) -> None:
        super().__init__()
        self.config = config or PairConfig()
        self.streams: list[list[ChatMessage]] = []
        self.best: tuple[int, str] | None = None  # (rating, prompt)
        self._pending: dict[str, Any] | None = None  # this run's stream, prompt, attacker reply

    def initialize(self, goal: str, controllables: Any, observables: Any, llm_client: Any) -> None:
        super().initialize(goal, controllables, observables, llm_client)
        self.streams = [
            [UserMessage(content=FIRST_TURN.format(goal=goal))] for _ in range(self.config.n_streams)
        ]

    @property
    def max_runs(self) -> int:
        return self.config.n_streams * self.config.n_iterations

    def _messages(self, stream: int) -> list[ChatMessage]:
        history = self.streams[stream][-(2 * self.config.keep_last_n - 1) :]
        return [SystemMessage(content=ATTACKER_SYSTEM.format(goal=self.goal)), *history]

    async def inject(self, event: ControllablePreCallEvent) -> str | AttackerFailure | None:
        if not single_turn(event):
            return None  # single-turn: end the conversation
        stream = len(self.past_trajectories) % self.config.n_streams
        prompt, raw, problem = await self.checked_prompt(
            self._messages(stream), instructions=ATTACKER_SYSTEM.format(goal="")
        )
        if prompt is None:
            self._pending = {"stream": stream, "prompt": None, "raw": raw, "problem": problem}
            return self.attacker_failure(f"PAIR stream {stream}: {problem}", raw)
        self._pending = {"stream": stream, "prompt": prompt, "raw": raw}
        return prompt

    async def run_ended(self, event: RunEndEvent) -> bool:
        pending, self._pending = self._pending, None
        response, score = await self.score_run(event, self.config.scorer)
        if pending is not None:
            history = self.streams[pending["stream"]]
            history.append(AssistantMessage(content=pending["raw"] or "(nothing)"))
            if pending["prompt"] is None:  # nothing was sent: tell the stream why
                history.append(UserMessage(content=REJECTED.format(problem=pending["problem"])))
            else:
                history.append(UserMessage(content=FEEDBACK.format(
                    response=clip(response, 1500), goal=self.goal, score=score)))
            if pending["prompt"] is not None and (self.best is None or score > self.best[0]):
                self.best = (score, pending["prompt"])
        return (
            succeeded(event.evaluation)
            or score >= self.config.success_rating
            or self.runs_so_far >= self.max_runs
        )
