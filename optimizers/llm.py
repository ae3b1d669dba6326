"""LLMClient: the constrained LLM access the controller hands to an optimizer.

Model, API base and key are fixed at construction; the optimizer only chooses messages and
sampling parameters. A budget in USD is checked before every call; cost comes from
`litellm.completion_cost`, with per-token prices for local models that litellm does not know.
Transient failures (429, 5xx, timeouts, connection errors) are retried by our own loop with
exponential backoff and full jitter (litellm's `num_retries` needs tenacity, which we lack).

litellm is imported lazily, inside the call path: importing it costs seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from optimizers.errors import BudgetExhaustedError
from targets.messages import ChatMessage, wire

if TYPE_CHECKING:
    from litellm.types.utils import ModelResponse

log = logging.getLogger(f"siegeflow.{__name__}")  # under "siegeflow": reaches run logs

#: Parameters that would change *what* is called or *who pays*: fixed by the controller.
LOCKED_PARAMS = frozenset({
    "model", "api_base", "base_url", "api_key", "api_key_env", "api_version", "organization",
    "custom_llm_provider", "deployment_id", "azure_ad_token", "azure_ad_token_provider",
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region_name",
    "vertex_project", "vertex_location", "vertex_credentials", "headers", "extra_headers",
    "input_cost_per_token", "output_cost_per_token", "custom_cost_per_token",
    "num_retries", "max_retries", "fallbacks", "context_window_fallbacks", "litellm_params",
})
#: Parameters an optimizer may pass per call (sampling, tools, output format, test mocks).
ALLOWED_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n", "seed",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "response_format", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort",
    "user", "timeout", "mock_response",
})
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class SecretLike(Protocol):
    def get_secret_value(self) -> str: ...


class _Secret:
    """Holds the API key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("API keys are not picklable")


@dataclass(frozen=True, kw_only=True)
class LLMUsage:
    """A snapshot of what the client has spent."""

    calls: int = 0  # completed calls (each may include retried attempts)
    failed_calls: int = 0  # calls that raised after their retries
    retries: int = 0  # extra attempts after transient failures
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0  # completed calls litellm could not price (counted as $0)
    max_cost: float | None = None

    @property
    def remaining_usd(self) -> float | None:
        return None if self.max_cost is None else max(0.0, self.max_cost - self.cost_usd)


async def _acompletion(**kwargs: Any) -> ModelResponse:
    """The single litellm entry point (tests replace it to simulate transient failures)."""
    import litellm

    return await litellm.acompletion(**kwargs)


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


def is_transient(exc: BaseException) -> bool:
    """429, 5xx, timeouts and connection failures are worth another attempt; the rest are not."""
    if isinstance(exc, TimeoutError):
        return True
    litellm = _litellm()
    transient = (
        litellm.Timeout, litellm.APIConnectionError, litellm.RateLimitError,
        litellm.ServiceUnavailableError, litellm.InternalServerError, litellm.BadGatewayError,
    )
    return isinstance(exc, transient) or getattr(exc, "status_code", None) in _TRANSIENT_STATUS


class LLMClient:
    """Budgeted, locked-down async chat completion for optimizers. Thread- and task-safe."""

    __slots__ = (
        "_model", "_api_base", "_key", "_max_cost", "_prices", "_max_retries", "_backoff_base",
        "_backoff_max", "_timeout_s", "_defaults", "_lock", "_usage", "_price_checked", "_frozen",
    )

    def __init__(
        self,
        *,
        model: str,
        api_base: str | None = None,
        api_key: SecretLike | str | None = None,
        api_key_env: str | None = None,
        max_cost: float | None = None,
        input_cost_per_token: float | None = None,
        output_cost_per_token: float | None = None,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        timeout_s: float | None = 60.0,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """`defaults`: per-call parameters set by the controller (e.g. temperature, or
        mock_response for dry runs); the optimizer may override them per call."""
        if not model:
            raise ValueError("model is required")
        if api_key is not None and api_key_env is not None:
            raise ValueError("pass api_key or api_key_env, not both")
        if max_cost is not None and max_cost < 0:
            raise ValueError("max_cost must be >= 0")
        if (input_cost_per_token is None) != (output_cost_per_token is None):
            raise ValueError("pass both input_cost_per_token and output_cost_per_token, or neither")
        if input_cost_per_token is not None and min(input_cost_per_token, output_cost_per_token or 0) < 0:
            raise ValueError("token prices must be >= 0")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        defaults = dict(defaults or {})
        self._check_names(defaults)
        key: str | None
        if api_key_env is not None:
            key = os.environ.get(api_key_env)
            if key is None:
                raise ValueError(f"environment variable {api_key_env} is not set")
        elif api_key is None or isinstance(api_key, str):
            key = api_key
        else:
            key = api_key.get_secret_value()
        self._model = model
        self._api_base = api_base
        self._key = None if key is None else _Secret(key)
        self._max_cost = max_cost
        self._prices = (
            None if input_cost_per_token is None
            else {"input_cost_per_token": input_cost_per_token, "output_cost_per_token": output_cost_per_token}
        )
        self._max_retries = max_retries
        self._backoff_base = backoff_base_s
        self._backoff_max = backoff_max_s
        self._timeout_s = timeout_s
        self._defaults = defaults
        self._lock = threading.Lock()
        self._usage = LLMUsage(max_cost=max_cost)
        self._price_checked = self._prices is not None or max_cost is None
        self._frozen = True

    def __setattr__(self, name: str, value: Any) -> None:
        # Internal writes go through object.__setattr__; from outside, nothing can be re-pointed
        # (model, key, budget) or reset (spend) after construction.
        if getattr(self, "_frozen", False):
            raise AttributeError(f"LLMClient.{name} is locked by the controller")
        object.__setattr__(self, name, value)

    def __reduce__(self) -> Any:
        raise TypeError("LLMClient is not picklable: it holds an API key and shared accounting")

    def __repr__(self) -> str:
        usage = self.usage
        return (
            f"LLMClient(model={self._model!r}, api_base={self._api_base!r}, "
            f"api_key={'set' if self._key else 'unset'}, max_cost={self._max_cost}, "
            f"spent={usage.cost_usd:.6f}, calls={usage.calls})"
        )

    # -- read-only configuration ---------------------------------------------------------------
    @property
    def model(self) -> str:
        return self._model

    @property
    def api_base(self) -> str | None:
        return self._api_base

    @property
    def max_cost(self) -> float | None:
        return self._max_cost

    @property
    def usage(self) -> LLMUsage:
        with self._lock:
            return self._usage

    @property
    def budget_exhausted(self) -> bool:
        usage = self.usage
        return self._max_cost is not None and usage.cost_usd >= self._max_cost

    # -- calling -------------------------------------------------------------------------------
    @staticmethod
    def _check_names(kwargs: Mapping[str, Any]) -> None:
        for name in kwargs:
            if name in LOCKED_PARAMS:
                raise ValueError(f"{name!r} is locked by the controller and cannot be passed per call")
            if name == "stream":
                raise ValueError("streaming is not supported: cost accounting needs the full response")
            if name not in ALLOWED_PARAMS:
                raise ValueError(f"unsupported parameter {name!r} (allowed: {sorted(ALLOWED_PARAMS)})")

    def _check_params(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        self._check_names(kwargs)
        params = {**self._defaults, **kwargs}
        if self._timeout_s is not None:
            params.setdefault("timeout", self._timeout_s)
        return params

    def _check_budget(self) -> None:
        if self._max_cost is None:
            return
        spent = self.usage.cost_usd
        if spent >= self._max_cost:
            raise BudgetExhaustedError(spent_usd=spent, max_cost_usd=self._max_cost)

    def _ensure_priced(self) -> None:
        """With a budget, refuse (before spending anything) a model litellm cannot price."""
        if self._price_checked:
            return
        litellm = _litellm()
        try:
            litellm.get_model_info(self._model)
        except litellm.exceptions.ModelNotMappedError as exc:
            raise ValueError(
                f"max_cost is set but litellm has no price for {self._model!r}: pass "
                "input_cost_per_token and output_cost_per_token"
            ) from exc
        object.__setattr__(self, "_price_checked", True)

    def _cost(self, response: ModelResponse) -> float | None:
        litellm = _litellm()
        if self._prices is not None:
            return float(litellm.completion_cost(
                completion_response=response, model=self._model, custom_cost_per_token=self._prices,
            ))
        try:
            return float(litellm.completion_cost(completion_response=response, model=self._model))
        except litellm.exceptions.ModelNotMappedError:
            return None

    def _account(self, **delta: Any) -> None:
        with self._lock:
            u = self._usage
            object.__setattr__(self, "_usage", LLMUsage(
                calls=u.calls + delta.get("calls", 0),
                failed_calls=u.failed_calls + delta.get("failed_calls", 0),
                retries=u.retries + delta.get("retries", 0),
                prompt_tokens=u.prompt_tokens + delta.get("prompt_tokens", 0),
                completion_tokens=u.completion_tokens + delta.get("completion_tokens", 0),
                cost_usd=u.cost_usd + delta.get("cost_usd", 0.0),
                unpriced_calls=u.unpriced_calls + delta.get("unpriced_calls", 0),
                max_cost=u.max_cost,
            ))

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0.0, min(self._backoff_max, self._backoff_base * 2**attempt))

    async def complete(
        self, messages: Sequence[ChatMessage | Mapping[str, Any]], **kwargs: Any
    ) -> ModelResponse:
        """One chat completion (litellm ModelResponse). Raises BudgetExhaustedError when spent >= max_cost.
        `messages`: typed, or in their OpenAI form (spec 004's optimizers speak that).

        Concurrent calls all pass the check while the spend is under budget, so the overshoot is
        bounded by the cost of the calls in flight at that moment.
        """
        params = self._check_params(kwargs)
        self._ensure_priced()
        attempt = 0
        while True:
            self._check_budget()
            try:
                response = await _acompletion(
                    model=self._model,
                    messages=wire(messages),
                    api_base=self._api_base,
                    api_key=None if self._key is None else self._key.get_secret_value(),
                    max_retries=0,  # the provider SDK would retry 429/5xx on its own: ours only
                    **params,
                )
            except Exception as exc:  # classified below; nothing is swallowed
                if attempt >= self._max_retries or not is_transient(exc):
                    self._account(failed_calls=1)
                    raise
                delay = self._backoff(attempt)
                attempt += 1
                self._account(retries=1)
                log.warning(
                    "LLM call to %s failed (%s, status %s); retry %d/%d in %.2fs",
                    self._model, type(exc).__name__, getattr(exc, "status_code", None),
                    attempt, self._max_retries, delay,
                )
                await asyncio.sleep(delay)
                continue
            cost = self._cost(response)
            usage = getattr(response, "usage", None)
            self._account(
                calls=1,
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                cost_usd=cost or 0.0,
                unpriced_calls=1 if cost is None else 0,
            )
            return response
