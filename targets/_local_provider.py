"""litellm custom provider ``siegeflow-local``: routes ``siegeflow-local/<model>`` to ``targets.local``.

Why a custom provider rather than a local HTTP server: in-process there is no port, no process
to start, wait for and kill, and no HTTP overhead; and because it is a litellm provider, the
embedded target goes through exactly the same ``chat()`` → litellm path as any hosted model.
Imported only from ``targets._litellm`` (it subclasses litellm's ``CustomLLM``).
"""

from __future__ import annotations

import threading
from typing import Any

from litellm import CustomLLM
from litellm.exceptions import ContextWindowExceededError
from litellm.types.utils import ModelResponse, Usage

from targets import local

_registered = False
_lock = threading.Lock()


def _gen_kwargs(optional_params: dict[str, Any]) -> dict[str, Any]:
    stop = optional_params.get("stop")
    return {
        "max_tokens": optional_params.get("max_tokens") or optional_params.get("max_completion_tokens"),
        "temperature": optional_params.get("temperature"),
        "seed": optional_params.get("seed"),
        "stop": [stop] if isinstance(stop, str) else stop,
    }


def _fill(model_response: ModelResponse, out: dict[str, Any], model: str) -> ModelResponse:
    choice = out["choices"][0]
    model_response.choices[0].message.content = choice["message"].get("content")
    model_response.choices[0].finish_reason = choice.get("finish_reason") or "stop"
    usage = out.get("usage") or {}
    model_response.usage = Usage(  # type: ignore[attr-defined]  # set at run time, undeclared
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
        total_tokens=usage.get("total_tokens", 0),
    )
    model_response.model = f"{local.PROVIDER}/{model}"
    return model_response


def _context_error(exc: local.ContextTooLong, model: str) -> ContextWindowExceededError:
    return ContextWindowExceededError(message=str(exc), model=model, llm_provider=local.PROVIDER)


class SiegeflowLocalLLM(CustomLLM):
    """Chat completions from the embedded llama.cpp engine (no streaming)."""

    def completion(self, model: str, messages: list[Any], api_base: str, custom_prompt_dict: dict[str, Any],
                   model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any,
                   logging_obj: Any, optional_params: dict[str, Any], *args: Any, **kwargs: Any) -> ModelResponse:
        try:
            out = local.engine(model).generate(messages, **_gen_kwargs(optional_params))
        except local.ContextTooLong as exc:
            raise _context_error(exc, model) from exc
        return _fill(model_response, out, model)

    async def acompletion(self, model: str, messages: list[Any], api_base: str, custom_prompt_dict: dict[str, Any],
                          model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any,
                          logging_obj: Any, optional_params: dict[str, Any], *args: Any,
                          **kwargs: Any) -> ModelResponse:
        try:
            out = await local.agenerate(model, messages, **_gen_kwargs(optional_params))
        except local.ContextTooLong as exc:
            raise _context_error(exc, model) from exc
        return _fill(model_response, out, model)


def register(litellm: Any) -> None:
    """Add the provider and its zero prices to `litellm` (the module) once per process."""
    global _registered
    if _registered:
        return
    with _lock:
        if _registered:
            return
        litellm.custom_provider_map = [
            *[p for p in litellm.custom_provider_map if p.get("provider") != local.PROVIDER],
            {"provider": local.PROVIDER, "custom_handler": SiegeflowLocalLLM()},
        ]
        litellm.register_model(
            {
                f"{local.PROVIDER}/{name}": {
                    "input_cost_per_token": 0.0,
                    "output_cost_per_token": 0.0,
                    "cache_creation_input_token_cost": 0.0,
                    "cache_read_input_token_cost": 0.0,
                    "litellm_provider": local.PROVIDER,
                    "mode": "chat",
                    "max_input_tokens": spec.n_ctx,
                    "max_tokens": spec.n_ctx,
                }
                for name, spec in local.MODELS.items()
            }
        )
        _registered = True
