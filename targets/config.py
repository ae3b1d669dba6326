"""How to reach a target. Holds the *name* of the key's environment variable, never the key."""

from __future__ import annotations

import os
import re
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from targets.endpoint_config import EndpointConfig
from targets.ratelimit import RateLimit

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_LOOKS_LIKE_KEY = re.compile(r"^(sk-|sk_|pk-|gsk_|xai-|AIza|hf_)|^[A-Za-z0-9_\-]{32,}$")


def check_key_env_name(value: str | None) -> str | None:
    """`api_key_env` is a variable's NAME; the message never echoes a value (it may be a key)."""
    if value is None:
        return None
    if _LOOKS_LIKE_KEY.match(value) and not value.isupper():
        raise ValueError(
            "api_key_env takes the NAME of an environment variable (e.g. OPENAI_API_KEY), "
            "and the value given looks like a key itself"
        )
    if not _ENV_NAME.match(value):
        raise ValueError("api_key_env must be an environment variable name like OPENAI_API_KEY")
    return value


def check_key_block_name(value: str | None) -> str | None:
    """`api_key_block` is a Prefect Secret block's NAME (same care as `check_key_env_name`)."""
    if value is not None and not _BLOCK_NAME.match(value):
        raise ValueError("api_key_block takes the NAME of a Prefect Secret block "
                         "(lower-case letters, digits and dashes, e.g. openai-key)")
    return value


class MissingApiKeyError(LookupError):
    """The environment variable named by ``api_key_env`` is not set (or empty)."""


class GuardrailConfig(BaseModel):
    """An input filter and an output check around a target (see ``targets.guardrail``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classifier: Literal["auto", "embedding", "keyword"] = Field(
        "auto",
        description="'embedding': nearest neighbours over MiniLM sentence embeddings of a labelled "
        "set; 'keyword': a regular expression of harmful words; 'auto': 'embedding' when its "
        "weights are installed, else 'keyword' (with a warning).",
    )
    check_input: bool = True
    check_output: bool = True
    input_threshold: float = Field(0.5, ge=0.0, le=1.0, description="block prompts scoring at least this")
    output_threshold: float = Field(0.5, ge=0.0, le=1.0, description="replace answers scoring at least this")
    refusal_text: str = "I'm sorry, but I can't help with that request."
    output_replacement: str = "I'm sorry, but I can't share that."


Transport = Literal["auto", "litellm", "http"]


class TargetConfig(BaseModel):
    """A model to call and how: any litellm model string, plus retry, cost and guardrail settings.

    ``transport``: ``"litellm"`` always goes through litellm; ``"http"`` posts straight to
    ``{api_base}/chat/completions`` (an OpenAI-compatible server) with a shared keep-alive client;
    ``"auto"`` (default) picks ``"http"`` for ``openai/...`` models with ``api_base`` set and
    ``"litellm"`` otherwise. Both give the same ``Completion``.

    Keys: only the variable named by ``api_key_env`` is read, at call time. With ``api_base`` set
    and no ``api_key_env``, no key is sent at all — an ambient ``OPENAI_API_KEY`` must not travel
    to a third-party host. Without ``api_base``, litellm's usual provider variables apply.
    """

    # hide_input_in_errors: a key pasted into the wrong field must not end up in a traceback.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    model: str = Field(min_length=1, description="a litellm model string, e.g. 'openai/gpt-4o-mini'")
    api_base: str | None = None
    api_key_env: str | None = Field(None, description="NAME of the environment variable holding the key")
    api_key_block: str | None = Field(
        None, description="NAME of a Prefect Secret block holding the key, read by the flow at "
        "call time (keeps the key out of workers' environments and Prefect's scratch files)",
    )
    system_prompt: str | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="None: provider default")
    max_tokens: int | None = Field(512, ge=1)
    max_response_chars: int = Field(
        100_000, ge=1, description="Answers longer than this are stored truncated, with a marker"
    )
    seed: int | None = None
    timeout_s: float = Field(60.0, gt=0.0, description="per attempt")
    max_retries: int = Field(3, ge=0, le=20, description="attempts after the first")
    backoff_initial_s: float = Field(1.0, ge=0.0)
    backoff_max_s: float = Field(30.0, ge=0.0)
    input_cost_per_token: float | None = Field(None, ge=0.0, description="USD; overrides litellm's price")
    output_cost_per_token: float | None = Field(None, ge=0.0, description="USD; overrides litellm's price")
    transport: Transport = "auto"
    guardrail: GuardrailConfig | None = None
    rate_limit: RateLimit | None = Field(
        None, description="Requests per minute / in flight, shared by every worker via Redis"
    )
    endpoint: EndpointConfig | None = Field(
        None, description="Your own HTTP app as the target (model 'http:NAME'); see docs/targets.md"
    )

    @field_validator("api_key_env")
    @classmethod
    def _is_env_name(cls, value: str | None) -> str | None:
        return check_key_env_name(value)

    @field_validator("api_key_block")
    @classmethod
    def _is_block_name(cls, value: str | None) -> str | None:
        return check_key_block_name(value)

    @field_validator("api_base")
    @classmethod
    def _is_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("api_base must be an http(s) URL like http://127.0.0.1:8000/v1")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_ranges(self) -> TargetConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        if self.api_key_env is not None and self.api_key_block is not None:
            raise ValueError("give the key as api_key_env or api_key_block, not both")
        if self.transport == "http" and self.api_base is None:
            raise ValueError("transport='http' needs api_base")
        own = self.kind != "model"
        if (self.endpoint is not None) != self.model.startswith("http:"):
            raise ValueError("an HTTP app target has model 'http:NAME' and an endpoint section; "
                             "an endpoint section needs a model 'http:NAME'")
        if self.kind == "python":
            from targets.pyfunc import check_spec

            check_spec(self.model)
        if own and (self.api_base is not None or self.guardrail is not None
                    or self.transport == "http"):
            raise ValueError(f"a {self.kind} target takes no api_base, transport or guardrail")
        return self

    @property
    def kind(self) -> Literal["model", "http", "python"]:
        """`model` (litellm/OpenAI-compatible), `http` (your app's endpoint) or `python`."""
        if self.model.startswith("http:"):
            return "http"
        if self.model.startswith("python:"):
            return "python"
        return "model"

    # ----- derived --------------------------------------------------------------------------
    @property
    def has_custom_prices(self) -> bool:
        return self.input_cost_per_token is not None or self.output_cost_per_token is not None

    @property
    def resolved_transport(self) -> Literal["litellm", "http"]:
        if self.transport == "auto":
            return "http" if self.api_base and self.model.startswith("openai/") else "litellm"
        return self.transport

    def api_key(self) -> str | None:
        """The key, read from the environment at call time; None when no variable is configured."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise MissingApiKeyError(f"environment variable {self.api_key_env} is not set")
        return value

    def describe(self) -> str:
        """A one-line summary safe for reports and logs: no key, no credentials in the URL."""
        parts = [self.model]
        if self.endpoint is not None:
            parts.append(f"@ {self.endpoint.method} {_redact_url(self.endpoint.url)}")
        if self.api_base:
            parts.append(f"@ {_redact_url(self.api_base)}")
        if self.api_key_env:
            parts.append(f"(key from ${self.api_key_env})")
        if self.api_key_block:
            parts.append(f"(key from Secret block {self.api_key_block})")
        if self.guardrail is not None:
            parts.append(f"[guardrail: {self.guardrail.classifier}]")
        return " ".join(parts)


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"***@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
