"""complete(): text completions (/v1/completions) through both transports, with the same
retries, key handling and error contract as chat()."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from targets import GuardrailConfig, TargetConfig
from targets.chat import complete, complete_for_model
from tests.support.openai_server import Fault, OpenAIServer
from tests.targets.conftest import fast_config, run

PROMPT = "[INST] What is the capital of France? [/INST]"
SECRET = "sk-siegeflow-test-SECRET-0123456789"


def test_text_completion_returns_text_tokens_and_cost(server: OpenAIServer, transport: str) -> None:
    config = fast_config(server.base_url, transport=transport, input_cost_per_token=1e-6,
                         output_cost_per_token=2e-6)
    result = run(complete(config, PROMPT))
    assert result.ok and result.attempts == 1 and result.finish_reason == "stop"
    assert result.text == f"Here is a helpful answer: {PROMPT}"
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.cost_usd == pytest.approx(result.prompt_tokens * 1e-6
                                            + result.completion_tokens * 2e-6)
    (entry,) = server.stats(log=True)["log"]
    assert entry["kind"] == "text" and entry["status"] == 200


def test_rate_limits_and_server_errors_are_retried(server: OpenAIServer, transport: str) -> None:
    server.configure(faults=[Fault(status=429, first=1), Fault(status=500, first=1)])
    result = run(complete(fast_config(server.base_url, transport=transport), PROMPT))
    assert result.ok and result.attempts == 3
    assert server.stats()["by_status"] == {"200": 1, "429": 1, "500": 1}


def test_persistent_errors_end_as_an_error_completion(server: OpenAIServer, transport: str) -> None:
    server.configure(faults=[Fault(status=503)])
    result = run(complete(fast_config(server.base_url, transport=transport, max_retries=1), PROMPT))
    assert not result.ok and result.text is None
    assert result.error_kind == "server" and result.attempts == 2


def test_key_by_variable_name_reaches_the_server_and_not_the_result(
    monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("SIEGEFLOW_TEST_KEY", SECRET)
    with OpenAIServer(api_key=SECRET) as server:
        config = fast_config(server.base_url, transport=transport, api_key_env="SIEGEFLOW_TEST_KEY")
        assert run(complete(config, PROMPT)).ok
        wrong = fast_config(server.base_url, transport=transport)  # no key sent at all
        denied = run(complete(wrong, PROMPT))
    assert denied.error_kind == "auth" and denied.attempts == 1 and SECRET not in repr(denied)


def test_a_body_that_is_not_a_text_completion_is_an_invalid_response() -> None:
    class ChatShaped(OpenAIServer):
        def _text_completion(self, request: dict[str, Any], model: str, reply: Any) -> Any:
            return self._completion(request, model, reply)  # a chat body on /completions

    with ChatShaped() as server:
        result = run(complete(fast_config(server.base_url, max_retries=0), PROMPT))
    assert result.error_kind == "invalid_response" and "not a text completion" in result.error


def test_no_system_prompt_or_guardrail_in_a_raw_prompt(server: OpenAIServer) -> None:
    with pytest.raises(ValueError, match="neither system_prompt nor guardrail"):
        run(complete(fast_config(server.base_url, system_prompt="Be nice."), PROMPT))
    with pytest.raises(ValueError, match="neither system_prompt nor guardrail"):
        run(complete(fast_config(server.base_url, guardrail=GuardrailConfig()), PROMPT))
    with pytest.raises(ValueError, match="non-empty prompt"):
        run(complete(fast_config(server.base_url), ""))
    with pytest.raises(ValueError, match="chat only"):
        run(complete(TargetConfig(model="siegeflow-local/tiny"), PROMPT))


def test_bound_to_a_model_mapping(server: OpenAIServer) -> None:
    call = complete_for_model({"model": "openai/siegeflow-test", "api_base": server.base_url})
    assert run(call(PROMPT)).text.endswith(PROMPT)


def test_server_rejects_a_text_completion_without_a_prompt(server: OpenAIServer) -> None:
    request = urllib.request.Request(server.base_url + "/completions", method="POST",
                                     data=json.dumps({"model": "m", "messages": []}).encode())
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 400 and b"'prompt' must be a string" in info.value.read()
