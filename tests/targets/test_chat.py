"""chat() against the in-process server, through both the lean HTTP path and litellm."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

import pytest

from targets import Completion, TargetConfig, chat
from tests.support.openai_server import Fault, OpenAIServer, Reply, ToolCall
from tests.targets.conftest import fast_config, run

USER = [{"role": "user", "content": "What is the capital of France?"}]


def test_success_returns_text_tokens_and_attempts(server: OpenAIServer, transport: str) -> None:
    result = run(chat(fast_config(server.base_url, transport=transport), USER))
    assert isinstance(result, Completion)
    assert result.ok and result.error is None and result.error_kind is None
    assert result.text == "Here is a helpful answer: What is the capital of France?"
    assert result.finish_reason == "stop"
    assert result.attempts == 1
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.latency_s > 0
    assert result.cost_usd == 0.0  # an unknown model without prices is free, not an error
    assert server.stats()["chat_requests"] == 1


def test_custom_prices_give_the_cost(server: OpenAIServer, transport: str) -> None:
    config = fast_config(
        server.base_url, transport=transport, input_cost_per_token=1e-6, output_cost_per_token=3e-6
    )
    result = run(chat(config, USER))
    expected = result.prompt_tokens * 1e-6 + result.completion_tokens * 3e-6
    assert result.cost_usd == pytest.approx(expected)
    assert result.cost_usd > 0


def test_litellm_price_map_is_used_for_known_models(server: OpenAIServer, transport: str) -> None:
    # gpt-4o-mini is in litellm's shipped price map; the server answers whatever the model name.
    config = fast_config(server.base_url, model="openai/gpt-4o-mini", transport=transport)
    result = run(chat(config, USER))
    assert result.ok
    assert result.cost_usd == pytest.approx(result.prompt_tokens * 0.15e-6 + result.completion_tokens * 0.6e-6)


def test_429_then_success_is_retried(server: OpenAIServer, transport: str) -> None:
    server.configure(faults=[Fault(status=429, first=2)])
    result = run(chat(fast_config(server.base_url, transport=transport), USER))
    assert result.ok
    assert result.attempts == 3
    stats = server.stats()
    assert stats["chat_requests"] == 3
    assert stats["by_status"] == {"200": 1, "429": 2}


def test_retry_after_is_honoured(server: OpenAIServer, transport: str) -> None:
    server.configure(faults=[Fault(status=503, first=1, retry_after=0.3)])
    config = fast_config(server.base_url, transport=transport, backoff_max_s=1.0)
    started = time.perf_counter()
    result = run(chat(config, USER))
    assert result.ok and result.attempts == 2
    assert time.perf_counter() - started >= 0.3


def test_persistent_500_fails_as_server_error_after_max_retries(server: OpenAIServer, transport: str) -> None:
    server.configure(faults=[Fault(status=500)])
    result = run(chat(fast_config(server.base_url, transport=transport, max_retries=3), USER))
    assert not result.ok
    assert result.error_kind == "server"
    assert result.text is None
    assert result.attempts == 4
    assert "500" in (result.error or "")
    assert server.stats()["chat_requests"] == 4


def test_timeout_is_retried_then_reported(server: OpenAIServer, transport: str) -> None:
    server.configure(faults=[Fault(hang_s=3.0)])
    config = fast_config(server.base_url, transport=transport, timeout_s=0.3, max_retries=1)
    started = time.perf_counter()
    result = run(chat(config, USER))
    assert result.error_kind == "timeout"
    assert result.attempts == 2
    assert time.perf_counter() - started < 5.5  # without the timeout: two 3 s hangs, >= 6 s


def test_timeout_then_success(server: OpenAIServer, transport: str) -> None:
    server.configure(faults=[Fault(hang_s=2.0, first=1)])
    result = run(chat(fast_config(server.base_url, transport=transport, timeout_s=0.3), USER))
    assert result.ok and result.attempts == 2


@pytest.mark.parametrize(("status", "kind"), [(401, "auth"), (403, "auth"), (404, "not_found"), (400, "bad_request")])
def test_client_errors_are_not_retried(server: OpenAIServer, transport: str, status: int, kind: str) -> None:
    server.configure(faults=[Fault(status=status)])
    result = run(chat(fast_config(server.base_url, transport=transport, max_retries=3), USER))
    assert result.error_kind == kind
    assert result.attempts == 1
    assert server.stats()["chat_requests"] == 1


def test_context_length_is_recognised(server: OpenAIServer, transport: str) -> None:
    message = "This model's maximum context length is 8192 tokens. (context_length_exceeded)"
    server.configure(faults=[Fault(status=400, message=message)])
    result = run(chat(fast_config(server.base_url, transport=transport), USER))
    assert result.error_kind == "context_length"
    assert result.attempts == 1


def test_connection_refused_is_a_connection_error(transport: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = fast_config(f"http://127.0.0.1:{port}/v1", transport=transport, max_retries=1)
    result = run(chat(config, USER))
    assert result.error_kind == "connection"
    assert result.attempts == 2


SECRET = "sk-siegeflow-test-SECRET-0123456789"


def test_key_comes_from_env_and_never_leaks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], transport: str
) -> None:
    monkeypatch.setenv("SIEGEFLOW_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with OpenAIServer(api_key=SECRET, faults=[Fault(status=429, first=1)]) as server:
        config = fast_config(server.base_url, transport=transport, api_key_env="SIEGEFLOW_TEST_KEY")
        result = run(chat(config, USER))
        assert result.ok and result.attempts == 2  # the key reached the server; a retry was logged
        for text in (repr(config), str(config), config.model_dump_json(), json.dumps(config.model_dump()), config.describe()):
            assert SECRET not in text
        assert "SIEGEFLOW_TEST_KEY" in config.describe()
        assert SECRET not in repr(result)
    out, err = capfd.readouterr()
    assert SECRET not in caplog.text and SECRET not in out and SECRET not in err
    assert any("retrying" in r.getMessage() for r in caplog.records)


def test_a_key_echoed_in_an_error_is_scrubbed(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    monkeypatch.setenv("SIEGEFLOW_TEST_KEY", SECRET)

    def echo_key(request: dict[str, Any]) -> Reply:
        return Reply(status=401, error=f"Incorrect API key provided: {SECRET}")

    with OpenAIServer(responder=echo_key) as server:
        config = fast_config(server.base_url, transport=transport, api_key_env="SIEGEFLOW_TEST_KEY")
        result = run(chat(config, USER))
    assert result.error_kind == "auth"
    assert SECRET not in (result.error or "")
    assert "***" in (result.error or "")


def test_wrong_key_is_auth_error_and_not_retried(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    monkeypatch.setenv("SIEGEFLOW_TEST_KEY", "sk-wrong")
    with OpenAIServer(api_key=SECRET) as server:
        config = fast_config(server.base_url, transport=transport, api_key_env="SIEGEFLOW_TEST_KEY")
        result = run(chat(config, USER))
        assert result.error_kind == "auth" and result.attempts == 1
        assert server.stats()["chat_requests"] == 1


def test_missing_key_variable_is_an_auth_error_without_a_call(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIEGEFLOW_TEST_KEY_UNSET", raising=False)
    config = fast_config(server.base_url, api_key_env="SIEGEFLOW_TEST_KEY_UNSET")
    result = run(chat(config, USER))
    assert result.error_kind == "auth"
    assert "SIEGEFLOW_TEST_KEY_UNSET" in (result.error or "")
    assert result.attempts == 0
    assert server.stats()["chat_requests"] == 0


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tool_calls_are_parsed(server: OpenAIServer, transport: str) -> None:
    messages = [{"role": "user", "content": "Use get_weather for Paris"}]
    result = run(chat(fast_config(server.base_url, transport=transport), messages, tools=[WEATHER_TOOL]))
    assert result.ok
    assert result.finish_reason == "tool_calls"
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]
    assert call.name == "get_weather"
    assert call.parsed_arguments() == {"city": "Use get_weather for Paris"}
    assert call.id


def test_multiple_tool_calls_and_text(transport: str) -> None:
    def two_calls(request: dict[str, Any]) -> Reply:
        assert request["tools"][0]["function"]["name"] == "get_weather"
        return Reply(
            text="Checking both.",
            tool_calls=(
                ToolCall(name="get_weather", arguments='{"city": "Paris"}', id="call_a"),
                ToolCall(name="get_weather", arguments='{"city": "Rome"}', id="call_b"),
            ),
        )

    with OpenAIServer(responder=two_calls) as server:
        result = run(chat(fast_config(server.base_url, transport=transport), USER, tools=[WEATHER_TOOL]))
    assert result.text == "Checking both."
    assert [c.id for c in result.tool_calls] == ["call_a", "call_b"]
    assert [c.parsed_arguments()["city"] for c in result.tool_calls] == ["Paris", "Rome"]


def test_system_prompt_and_overrides_reach_the_server(transport: str) -> None:
    seen: list[dict[str, Any]] = []

    def record(request: dict[str, Any]) -> str:
        seen.append(request)
        return "ok"

    with OpenAIServer(responder=record) as server:
        config = fast_config(server.base_url, transport=transport, system_prompt="Be terse.", temperature=0.5)
        run(chat(config, USER, max_tokens=7, temperature=0.0))
        run(chat(config, [{"role": "system", "content": "Own system"}, *USER]))
    first, second = seen
    assert first["messages"][0] == {"role": "system", "content": "Be terse."}
    assert first["max_tokens"] == 7 and first["temperature"] == 0.0
    assert first["model"] == "siegeflow-test"
    assert [m["content"] for m in second["messages"]] == ["Own system", USER[0]["content"]]


def test_invalid_response_body_is_reported(server: OpenAIServer) -> None:
    def broken(request: dict[str, Any]) -> Reply:
        return Reply(status=200, text=None)

    server.set_responder(broken)
    result = run(chat(fast_config(server.base_url), USER))
    assert result.ok and result.text is None  # content null is valid OpenAI JSON (e.g. tool-only)


def test_programming_errors_raise() -> None:
    config = TargetConfig(model="openai/x", api_base="http://127.0.0.1:9/v1")
    with pytest.raises(TypeError, match="unknown overrides"):
        run(chat(config, USER, temprature=0.1))
    with pytest.raises(ValueError, match="non-empty list"):
        run(chat(config, []))
    with pytest.raises(TypeError, match="TargetConfig"):
        run(chat({"model": "x"}, USER))  # type: ignore[arg-type]  # a dict, not a TargetConfig, on purpose


def test_clients_work_across_event_loops(server: OpenAIServer) -> None:
    config = fast_config(server.base_url)
    for _ in range(3):  # a fresh loop each time, as separate Prefect task runs may use
        assert run(chat(config, USER)).ok
