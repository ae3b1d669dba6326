"""TargetConfig validation, secrets hygiene and backoff arithmetic."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from targets import GuardrailConfig, MissingApiKeyError, TargetConfig
from targets.errors import kind_for_status
from targets.retry import backoff_delay, parse_retry_after


def test_defaults_and_transport_choice() -> None:
    assert TargetConfig(model="openai/gpt-4o-mini").resolved_transport == "litellm"
    assert TargetConfig(model="openai/x", api_base="http://127.0.0.1:1/v1").resolved_transport == "http"
    assert TargetConfig(model="anthropic/claude", api_base="http://h/v1").resolved_transport == "litellm"
    assert TargetConfig(model="x", api_base="http://h/v1", transport="http").resolved_transport == "http"
    forced = TargetConfig(model="openai/x", api_base="http://h/v1", transport="litellm")
    assert forced.resolved_transport == "litellm"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": ""}, "at least 1 character"),
        ({"model": "m", "temperature": 3.0}, "less than or equal to 2"),
        ({"model": "m", "max_retries": -1}, "greater than or equal to 0"),
        ({"model": "m", "timeout_s": 0}, "greater than 0"),
        ({"model": "m", "backoff_initial_s": 5, "backoff_max_s": 1}, "backoff_max_s must be >="),
        ({"model": "m", "api_base": "localhost:8000"}, "http(s) URL"),
        ({"model": "m", "transport": "http"}, "needs api_base"),
        ({"model": "m", "api_key_env": "my key"}, "environment variable name"),
        ({"model": "m", "api_key": "x"}, "Extra inputs are not permitted"),
        ({"model": "m", "input_cost_per_token": -1}, "greater than or equal to 0"),
        ({"model": "m", "guardrail": {"classifier": "magic"}}, "'auto', 'embedding' or 'keyword'"),
        ({"model": "m", "guardrail": {"input_threshold": 2}}, "less than or equal to 1"),
    ],
)
def test_validation_errors_are_clear(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TargetConfig(**fields)  # type: ignore[arg-type]  # invalid values on purpose


def test_a_key_in_api_key_env_is_rejected_without_echoing_it() -> None:
    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    with pytest.raises(ValidationError) as info:
        TargetConfig(model="m", api_key_env=secret)
    assert "NAME of an environment variable" in str(info.value)
    assert secret not in str(info.value)


def test_api_key_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = TargetConfig(model="m", api_key_env="SIEGEFLOW_CFG_KEY")
    monkeypatch.delenv("SIEGEFLOW_CFG_KEY", raising=False)
    with pytest.raises(MissingApiKeyError, match="SIEGEFLOW_CFG_KEY"):
        config.api_key()
    monkeypatch.setenv("SIEGEFLOW_CFG_KEY", "sk-live")
    assert config.api_key() == "sk-live"
    assert "sk-live" not in repr(config) + config.model_dump_json()
    assert TargetConfig(model="m").api_key() is None


def test_describe_is_safe_for_reports() -> None:
    config = TargetConfig(
        model="openai/gpt-4o-mini",
        api_base="https://user:pa55word@proxy.example:8443/v1?token=abc",
        api_key_env="OPENAI_API_KEY",
        guardrail=GuardrailConfig(),
    )
    text = config.describe()
    assert text == "openai/gpt-4o-mini @ https://***@proxy.example:8443/v1 (key from $OPENAI_API_KEY) [guardrail: auto]"
    assert "pa55word" not in text and "token" not in text


def test_config_is_frozen_and_copyable() -> None:
    config = TargetConfig(model="m")
    with pytest.raises(ValidationError):
        config.model = "other"  # type: ignore[misc]  # frozen: the test expects the error
    assert config.model_copy(update={"max_tokens": 5}).max_tokens == 5
    assert hash(config) == hash(TargetConfig(model="m"))


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 10.0)]:
        assert backoff_delay(attempt, initial_s=1.0, max_s=10.0, rand=1.0) == ceiling
        assert backoff_delay(attempt, initial_s=1.0, max_s=10.0, rand=0.0) == 0.0
        delays = [backoff_delay(attempt, initial_s=1.0, max_s=10.0) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not lockstep


def test_retry_after_wins_but_is_capped() -> None:
    assert backoff_delay(1, initial_s=1.0, max_s=10.0, retry_after_s=3.0) == 3.0
    assert backoff_delay(1, initial_s=1.0, max_s=10.0, retry_after_s=300.0) == 10.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    future = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT")
    assert future is not None and future > 1e9


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (429, "", "rate_limit"),
        (500, "", "server"),
        (502, "", "server"),
        (503, "", "server"),
        (504, "", "timeout"),
        (408, "", "timeout"),
        (401, "", "auth"),
        (403, "", "auth"),
        (404, "", "not_found"),
        (400, "maximum context length is 4096 tokens", "context_length"),
        (400, "flagged by the content_filter", "content_filter"),
        (400, "bad temperature", "bad_request"),
        (422, "", "bad_request"),
        (418, "", "api_error"),
    ],
)
def test_status_to_kind(status: int, message: str, kind: str) -> None:
    assert kind_for_status(status, message) == kind


def test_api_key_block_is_a_block_name_and_excludes_api_key_env() -> None:
    """`api_key_block` names a Prefect Secret block (the key never sits in an environment)."""
    config = TargetConfig(model="openai/x", api_key_block="openai-key")
    assert "Secret block openai-key" in config.describe()
    with pytest.raises(ValueError, match="NAME of a Prefect Secret block"):
        TargetConfig(model="m", api_key_block="sk-Proj-ABCdef0123456789")
    with pytest.raises(ValueError, match="not both"):
        TargetConfig(model="m", api_key_block="k", api_key_env="OPENAI_API_KEY")
    from tracking import redact

    assert redact(config.model_dump())["api_key_block"] == "openai-key"  # resume needs it


def test_a_missing_secret_block_is_a_target_auth_error(prefect_api_url: str) -> None:
    import asyncio

    from targets import chat

    config = TargetConfig(model="openai/x", api_base="http://127.0.0.1:9/v1",
                          api_key_block="no-such-block-here", max_retries=0)
    completion = asyncio.run(chat(config, [{"role": "user", "content": "hi"}]))
    assert completion.error_kind == "auth" and "no-such-block-here" in (completion.error or "")
