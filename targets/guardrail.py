"""A guardrail around any target: an input filter before the call, an output check after it.

Put ``guardrail=GuardrailConfig(...)`` in a ``TargetConfig`` and ``chat()`` routes through
``guarded_call``. A blocked prompt is answered with ``refusal_text`` (``blocked_by="input"``, no
model call, cost 0); a flagged answer is replaced by ``output_replacement``
(``blocked_by="output"``, the call's cost and tokens kept). Both are the target's answer, not
errors: a red-teaming run must see a guarded target refuse, just as it would see a model refuse.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence

from targets.classifiers import Classifier, Stage, get_classifier
from targets.completion import Completion
from targets.config import GuardrailConfig, TargetConfig
from targets.messages import ChatMessage, last_user_text


async def _score(classifier_name: str, text: str, stage: Stage) -> float:
    def run() -> float:
        classifier: Classifier = get_classifier(classifier_name)
        return classifier.score([text], stage)[0]

    # Encoding costs tens of ms of CPU (and the first call loads the model): keep the loop free.
    return await asyncio.to_thread(run)


async def screen_input(guard: GuardrailConfig, messages: Sequence[ChatMessage]) -> float | None:
    """The prompt's harm score, or None when input checking is off."""
    if not guard.check_input:
        return None
    return await _score(guard.classifier, last_user_text(messages), "input")


async def screen_output(guard: GuardrailConfig, text: str | None) -> float | None:
    """The answer's harm score, or None when output checking is off or there is no text."""
    if not guard.check_output or not text:
        return None
    return await _score(guard.classifier, text, "output")


async def guarded_call(
    config: TargetConfig,
    messages: Sequence[ChatMessage],
    call: Callable[[Sequence[ChatMessage]], Awaitable[Completion]],
) -> Completion:
    """Screen ``messages``, run ``call`` if allowed, screen its answer."""
    guard = config.guardrail
    assert guard is not None
    started = time.perf_counter()
    score = await screen_input(guard, messages)
    if score is not None and score >= guard.input_threshold:
        return Completion(
            text=guard.refusal_text,
            finish_reason="guardrail",
            blocked_by="input",
            latency_s=time.perf_counter() - started,
        )
    completion = await call(messages)
    if not completion.ok:
        return completion
    score = await screen_output(guard, completion.text)
    if score is not None and score >= guard.output_threshold:
        completion = dataclasses.replace(
            completion, text=guard.output_replacement, tool_calls=(), finish_reason="guardrail", blocked_by="output"
        )
    return dataclasses.replace(completion, latency_s=time.perf_counter() - started)
