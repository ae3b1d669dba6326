"""The litellm path: imported on first use only (litellm takes 7–12 s to import).

One retry layer (ours, in ``targets.chat``): litellm's ``num_retries`` stays unset and the OpenAI
SDK's own retries are disabled with ``max_retries=0``.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import targets._env  # noqa: F401  (environment before litellm)
from targets.completion import ErrorKind, ToolCall
from targets.config import TargetConfig
from targets.errors import AttemptError, kind_for_status, scrub
from targets.retry import parse_retry_after

_lock = threading.Lock()
_module: ModuleType | None = None

#: Placeholder key for an explicit api_base without api_key_env: local servers need none, and
#: litellm must not fall back to an ambient OPENAI_API_KEY and send it to a third-party host.
NO_KEY = "siegeflow-no-key"


def litellm_module() -> ModuleType:
    """litellm, imported and quietened once per process."""
    global _module
    if _module is None:
        with _lock:
            if _module is None:
                import litellm

                litellm.suppress_debug_info = True
                litellm.set_verbose = False
                litellm.success_callback = []
                litellm.failure_callback = []
                litellm.callbacks = []
                _module = litellm
    return _module


def _transport_kind(exc: BaseException) -> ErrorKind | None:
    """Timeout/connection failures litellm re-labels (a refused connection arrives as a 500)."""
    import openai

    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 10:
        if isinstance(cause, openai.APITimeoutError):
            return "timeout"
        if isinstance(cause, openai.APIConnectionError):
            return "connection"
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return None


_BUG_TYPES = (ImportError, TypeError, AttributeError, NameError, AssertionError, SyntaxError)


def _root_cause(exc: BaseException) -> BaseException:
    seen = 0
    while seen < 10:
        cause = exc.__cause__ or exc.__context__
        if cause is None:
            break
        exc = cause
        seen += 1
    return exc


def _classify(exc: BaseException, litellm: ModuleType) -> ErrorKind | None:
    """The error kind of a litellm exception; None when it is not one or when litellm wrapped a
    programming error (it reports e.g. a missing module as APIConnectionError): those raise."""
    import openai

    if isinstance(_root_cause(exc), _BUG_TYPES):
        return None

    ex = litellm.exceptions
    if isinstance(exc, openai.OpenAIError):  # every litellm exception derives from it
        kind = _transport_kind(exc)
        if kind is not None:
            return kind
    ordered: tuple[tuple[type[BaseException], ErrorKind], ...] = (
        (ex.Timeout, "timeout"),
        (ex.APIConnectionError, "connection"),
        (ex.RateLimitError, "rate_limit"),
        (ex.ContextWindowExceededError, "context_length"),
        (ex.ContentPolicyViolationError, "content_filter"),
        (ex.AuthenticationError, "auth"),
        (ex.PermissionDeniedError, "auth"),
        (ex.NotFoundError, "not_found"),
        (ex.BadRequestError, "bad_request"),
        (ex.UnprocessableEntityError, "bad_request"),
        (ex.InternalServerError, "server"),
        (ex.ServiceUnavailableError, "server"),
        (ex.BadGatewayError, "server"),
    )
    for cls, kind in ordered:
        if isinstance(exc, cls):
            return kind
    if isinstance(exc, openai.OpenAIError):
        status = getattr(exc, "status_code", None)
        return kind_for_status(status, str(exc)) if isinstance(status, int) else "api_error"
    return None


def _retry_after(exc: BaseException) -> float | None:
    # litellm keeps the provider's headers here; its `response` is often a synthetic stand-in.
    response_headers = getattr(getattr(exc, "response", None), "headers", None)
    for headers in (getattr(exc, "litellm_response_headers", None), response_headers):
        if headers is not None and headers.get("retry-after") is not None:
            return parse_retry_after(headers.get("retry-after"))
    return None


def register_local_provider() -> None:
    """Make ``siegeflow-local/...`` models callable through litellm (idempotent)."""
    from targets._local_provider import register

    register(litellm_module())


def _base_kwargs(
    config: TargetConfig, params: dict[str, Any], api_key: str | None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": config.model,
        "timeout": params["timeout_s"],
        "max_retries": 0,
    }
    if config.api_base:
        kwargs["api_base"] = config.api_base
        kwargs["api_key"] = api_key or NO_KEY
    elif api_key:
        kwargs["api_key"] = api_key
    for name in ("temperature", "max_tokens", "seed"):
        if params.get(name) is not None:
            kwargs[name] = params[name]
    return kwargs


def _attempt_error(exc: Exception, litellm: ModuleType, api_key: str | None) -> AttemptError:
    """The AttemptError for a litellm failure; programming errors are re-raised, not recorded."""
    kind = _classify(exc, litellm)
    if kind is None:
        root = _root_cause(exc)
        if root is not exc and isinstance(root, _BUG_TYPES):
            # litellm re-labels our (or its own) programming errors, e.g. a missing `local`
            # extra as APIConnectionError: surface the original, with its own traceback.
            raise root from None
        raise exc
    status = getattr(exc, "status_code", None)
    return AttemptError(
        kind=kind,
        message=scrub(f"{type(exc).__name__}: {exc}", api_key),
        status=status if isinstance(status, int) else None,
        retry_after_s=_retry_after(exc),
    )


async def attempt(
    config: TargetConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    params: dict[str, Any],
    api_key: str | None,
) -> tuple[dict[str, Any] | None, AttemptError | None]:
    """One litellm call → (parsed result, None) or (None, error)."""
    litellm = litellm_module()
    if config.model.startswith("siegeflow-local/"):
        register_local_provider()
    kwargs = {**_base_kwargs(config, params, api_key), "messages": messages}
    if tools:
        kwargs["tools"] = tools
        # litellm 1.106 checks tools for its MCP gateway by importing `mcp`, which is not a
        # dependency: without this flag every call with tools fails with "No module named 'mcp'".
        kwargs["_skip_mcp_handler"] = True
    try:
        response = await litellm.acompletion(**kwargs)
    except Exception as exc:  # noqa: BLE001 - litellm's errors share no base; classified here
        return None, _attempt_error(exc, litellm, api_key)
    return _parse(response, config, litellm), None


async def text_attempt(
    config: TargetConfig, prompt: str, params: dict[str, Any], api_key: str | None
) -> tuple[dict[str, Any] | None, AttemptError | None]:
    """One litellm text completion (``/v1/completions``) → (parsed result, None) or (None, error)."""
    litellm = litellm_module()
    kwargs = {**_base_kwargs(config, params, api_key), "prompt": prompt}
    try:
        response = await litellm.atext_completion(**kwargs)
    except Exception as exc:  # noqa: BLE001 - litellm's errors share no base; classified here
        return None, _attempt_error(exc, litellm, api_key)
    try:
        choice = response.choices[0]
        text = choice.text
        if not isinstance(text, str):
            raise TypeError(f"choices[0].text is {type(text).__name__}")
    except (IndexError, AttributeError, TypeError) as exc:
        return None, AttemptError(kind="invalid_response", status=200,
                                  message=scrub(f"not a text completion: {exc}", api_key))
    usage = getattr(response, "usage", None)
    return {
        "text": text,
        "finish_reason": getattr(choice, "finish_reason", None),
        "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
        "cost_usd": _cost(response, config, litellm),
    }, None


def _parse(response: Any, config: TargetConfig, litellm: ModuleType) -> dict[str, Any]:
    choice = response.choices[0]
    message = choice.message
    calls = tuple(
        ToolCall(name=c.function.name, arguments=c.function.arguments or "{}", id=c.id)
        for c in (getattr(message, "tool_calls", None) or ())
    )
    usage = getattr(response, "usage", None)
    return {
        "text": message.content,
        "tool_calls": calls,
        "finish_reason": choice.finish_reason,
        "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
        "cost_usd": _cost(response, config, litellm),
    }


def _cost(response: Any, config: TargetConfig, litellm: ModuleType) -> float:
    custom = None
    if config.has_custom_prices:
        custom = {
            "input_cost_per_token": config.input_cost_per_token or 0.0,
            "output_cost_per_token": config.output_cost_per_token or 0.0,
        }
    try:
        return float(
            litellm.completion_cost(
                completion_response=response, model=config.model, custom_cost_per_token=custom
            )
        )
    except (
        litellm.exceptions.ModelNotMappedError,
        litellm.exceptions.BadRequestError,
        litellm.exceptions.NotFoundError,
    ):
        return 0.0  # a model litellm has no price for, and no price set: free as far as we know
