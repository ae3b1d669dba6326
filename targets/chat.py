"""``chat()``: the one path by which siegeflow calls a model.

Retries rate limits, 5xx, timeouts and connection errors with exponential backoff and full
jitter (``Retry-After`` honoured), fails fast on everything else, and never raises for a
target-side failure: that is a ``Completion`` with ``error`` set. Our own bugs do raise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from targets.completion import RETRYABLE_KINDS, ChatFn, Completion, truncate_answer
from targets.config import MissingApiKeyError, TargetConfig
from targets.cost import http_cost
from targets.errors import AttemptError
from targets.messages import ChatMessage, SystemMessage, as_messages, to_openai
from targets.ratelimit import request_slot
from targets.retry import backoff_delay
from targets.secrets import resolve_api_key

logger = logging.getLogger("siegeflow.targets")

#: Per-call overrides ``chat()`` accepts (anything else is a programming error).
OVERRIDABLE: frozenset[str] = frozenset({"temperature", "max_tokens", "seed", "timeout_s", "max_retries"})

#: One call at the wire edge: the OpenAI-form messages and tools, the sampling params, the key.
Attempt = Callable[
    [TargetConfig, list[dict[str, Any]], "list[dict[str, Any]] | None", dict[str, Any], "str | None"],
    Awaitable[tuple["dict[str, Any] | None", "AttemptError | None"]],
]


def _params(config: TargetConfig, overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - OVERRIDABLE
    if unknown:
        raise TypeError(f"chat() got unknown overrides {sorted(unknown)}; allowed: {sorted(OVERRIDABLE)}")
    params = {
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "seed": config.seed,
        "timeout_s": config.timeout_s,
        "max_retries": config.max_retries,
    }
    params.update(overrides)
    if params["timeout_s"] is None or params["timeout_s"] <= 0:
        raise ValueError("timeout_s must be > 0")
    if params["max_retries"] is None or params["max_retries"] < 0:
        raise ValueError("max_retries must be >= 0")
    return params


def with_system_prompt(config: TargetConfig, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Prepend the config's system prompt unless the conversation brings its own."""
    if config.system_prompt and (not messages or not isinstance(messages[0], SystemMessage)):
        return [SystemMessage(content=config.system_prompt), *messages]
    return list(messages)


def _attempt_fn(config: TargetConfig) -> Attempt:
    if config.kind == "http":
        from targets import endpoint

        return endpoint.attempt
    if config.kind == "python":
        from targets import pyfunc

        return pyfunc.attempt
    if config.resolved_transport == "http":
        from targets import http

        return http.attempt
    from targets import _litellm

    return _litellm.attempt


async def chat(
    config: TargetConfig,
    messages: Sequence[ChatMessage],
    *,
    tools: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> Completion:
    """Call the target once (with retries); see the module docstring for the error contract.

    ``overrides``: ``temperature``, ``max_tokens``, ``seed``, ``timeout_s``, ``max_retries``.
    A guardrail in ``config`` screens the prompt before and the answer after the call.
    Messages in their OpenAI form (mappings) are accepted too, for callers outside the typed code.
    """
    if not isinstance(config, TargetConfig):
        raise TypeError(f"chat() needs a TargetConfig, got {type(config).__name__}")
    if not isinstance(messages, Sequence) or isinstance(messages, str | Mapping) or not messages:
        raise ValueError("chat() needs a non-empty list of messages")
    messages = as_messages(messages)
    params = _params(config, overrides)
    if config.guardrail is not None:
        from targets.guardrail import guarded_call

        return await guarded_call(config, messages, lambda msgs: _call(config, msgs, tools, params))
    return await _call(config, messages, tools, params)


async def _call(
    config: TargetConfig,
    messages: Sequence[ChatMessage],
    tools: list[dict[str, Any]] | None,
    params: dict[str, Any],
) -> Completion:
    attempt_fn = _attempt_fn(config)
    wire = to_openai(with_system_prompt(config, messages))
    return await _with_retries(
        config, params, lambda key: attempt_fn(config, wire, tools, params, key)
    )


async def complete(config: TargetConfig, prompt: str, **overrides: Any) -> Completion:
    """A text completion (``/v1/completions``): the prompt goes to the model verbatim.

    Why: fine-tuned classifiers (HarmBench's Llama-2 classifier, Llama Guard) expect their own
    raw prompt format, with no chat template around it. Same retries, backoff, cost, rate
    limits and error contract as ``chat``. A system prompt or a guardrail has no place in a raw
    prompt: the config must not set them.
    """
    if not isinstance(config, TargetConfig):
        raise TypeError(f"complete() needs a TargetConfig, got {type(config).__name__}")
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("complete() needs a non-empty prompt string")
    if config.system_prompt is not None or config.guardrail is not None:
        raise ValueError("a text completion takes neither system_prompt nor guardrail: "
                         "put any instructions in the prompt itself")
    if config.model.startswith("siegeflow-local/"):
        raise ValueError("the embedded local model serves chat only, not text completions")
    if config.kind != "model":
        raise ValueError(f"a {config.kind} target serves chat only, not text completions")
    params = _params(config, overrides)
    if config.resolved_transport == "http":
        from targets.http import text_attempt
    else:
        from targets._litellm import text_attempt
    return await _with_retries(
        config, params, lambda key: text_attempt(config, prompt, params, key)
    )


async def _with_retries(
    config: TargetConfig,
    params: dict[str, Any],
    one_attempt: Callable[[str | None], Awaitable[tuple[dict[str, Any] | None, AttemptError | None]]],
) -> Completion:
    """Run ``one_attempt(api_key)`` until it succeeds, fails for good or runs out of retries."""
    started = time.perf_counter()
    try:
        api_key = await resolve_api_key(config)
    except MissingApiKeyError as exc:
        return Completion(error=str(exc), error_kind="auth", attempts=0)
    max_retries = params["max_retries"]
    attempt = 0
    while True:
        attempt += 1
        if config.rate_limit is None:
            result, error = await one_attempt(api_key)
        else:
            async with request_slot(config.rate_limit, model=config.model,
                                    api_base=config.api_base, timeout_s=params["timeout_s"]):
                result, error = await one_attempt(api_key)
        if error is None:
            assert result is not None
            cost = result.pop("cost_usd", None)
            if cost is None:
                cost = http_cost(config, result["prompt_tokens"], result["completion_tokens"])
            if result.get("text"):
                result["text"] = truncate_answer(result["text"], config.max_response_chars)
            return Completion(
                **result, cost_usd=cost, latency_s=time.perf_counter() - started, attempts=attempt
            )
        if error.kind not in RETRYABLE_KINDS or attempt > max_retries:
            return Completion(
                error=error.message,
                error_kind=error.kind,
                attempts=attempt,
                latency_s=time.perf_counter() - started,
            )
        delay = backoff_delay(
            attempt,
            initial_s=config.backoff_initial_s,
            max_s=config.backoff_max_s,
            retry_after_s=error.retry_after_s,
        )
        logger.info(
            "target %s: %s on attempt %d/%d, retrying in %.2fs",
            config.describe(),
            error.kind,
            attempt,
            max_retries + 1,
            delay,
        )
        await asyncio.sleep(delay)


def chat_for_model(model: Any) -> ChatFn:
    """`chat` bound to one model: a `TargetConfig`, another pydantic model of its fields, or a
    mapping. What attack techniques and judges receive as their model call."""
    config = _as_config(model)

    async def call(messages: Sequence[ChatMessage]) -> Completion:
        return await chat(config, messages)

    return call


def complete_for_model(model: Any) -> Callable[[str], Awaitable[Completion]]:
    """`complete` bound to one model (as `chat_for_model`): what text-mode judges call."""
    config = _as_config(model)

    async def call(prompt: str) -> Completion:
        return await complete(config, prompt)

    return call


def _as_config(model: Any) -> TargetConfig:
    from pydantic import BaseModel

    if isinstance(model, TargetConfig):
        return model
    if isinstance(model, BaseModel):
        return TargetConfig.model_validate(model.model_dump())
    return TargetConfig.model_validate(model)
