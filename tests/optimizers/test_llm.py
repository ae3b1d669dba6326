"""LLMClient: locked parameters, budget, cost, usage, retries, secrecy.

Calls use litellm's `mock_response` (no network) with custom per-token prices so costs are not
zero: a mocked call reports 10 prompt + 20 completion tokens, i.e. $0.05 at 0.001/0.002.
The retry and key tests also go over real HTTP to the local OpenAI-compatible test server.
"""

from __future__ import annotations

import asyncio
import logging
import pickle

import pytest
from pydantic import SecretStr

import optimizers.llm as llm_module
from optimizers import BudgetExhaustedError, LLMClient
from tests.optimizers.conftest import LoopThread, arun
from tests.support.openai_server import Fault, OpenAIServer

pytestmark = pytest.mark.timeout(120)

PRICES = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
CALL_COST = 10 * 0.001 + 20 * 0.002
MESSAGES = [{"role": "user", "content": "write an attack"}]
SECRET = "sk-never-show-me-4242"


def client(**overrides) -> LLMClient:
    params = {"model": "openai/attacker-local", "api_key": SECRET, **PRICES, "defaults": {"mock_response": "attack!"}}
    params.update(overrides)
    return LLMClient(**params)


@pytest.fixture(scope="module", autouse=True)
def warm_litellm() -> None:
    """litellm imports most of itself on its first call (~2.5 s of CPU here, far more on a loaded
    box): pay that once outside `arun`'s deadlock bound, so the bound measures our code only."""
    import litellm

    asyncio.run(litellm.acompletion(model="openai/warm-up", messages=MESSAGES, mock_response="x",
                                    api_key="not-a-key"))


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if a call gets as far as litellm."""

    async def refuse(**kwargs):
        raise AssertionError("litellm must not be called")

    monkeypatch.setattr(llm_module, "_acompletion", refuse)


@pytest.mark.parametrize(
    "param", ["model", "api_base", "base_url", "api_key", "extra_headers", "custom_llm_provider",
              "input_cost_per_token", "custom_cost_per_token", "num_retries", "api_version"],
)
def test_locked_parameters_raise(no_network, param):
    with pytest.raises(ValueError, match="locked"):
        arun(lambda: client().complete(MESSAGES, **{param: "x"}))


def test_stream_and_unknown_parameters_raise(no_network):
    with pytest.raises(ValueError, match="streaming"):
        arun(lambda: client().complete(MESSAGES, stream=True))
    with pytest.raises(ValueError, match="unsupported parameter"):
        arun(lambda: client().complete(MESSAGES, callbacks=[print]))
    with pytest.raises(ValueError, match="locked"):
        client(defaults={"api_base": "http://evil"})


def test_configuration_is_read_only():
    llm = client(max_cost=1.0)
    for name in ("_model", "_api_base", "_max_cost", "_usage", "model"):
        with pytest.raises(AttributeError):
            setattr(llm, name, "other")
    assert llm.model == "openai/attacker-local"
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(llm)


def test_constructor_validation(monkeypatch):
    with pytest.raises(ValueError):
        LLMClient(model="")
    with pytest.raises(ValueError, match="not both"):
        LLMClient(model="m", api_key="a", api_key_env="B")
    with pytest.raises(ValueError, match="both input_cost_per_token"):
        LLMClient(model="m", input_cost_per_token=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        LLMClient(model="m", max_cost=-1)
    monkeypatch.delenv("SIEGEFLOW_TEST_ATTACKER_KEY", raising=False)
    with pytest.raises(ValueError, match="SIEGEFLOW_TEST_ATTACKER_KEY is not set"):
        LLMClient(model="m", api_key_env="SIEGEFLOW_TEST_ATTACKER_KEY")


def test_mocked_call_returns_model_response_and_counts_cost():
    llm = client()
    response = arun(lambda: llm.complete(MESSAGES))
    assert response.choices[0].message.content == "attack!"
    usage = llm.usage
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens) == (1, 10, 20)
    assert usage.cost_usd == pytest.approx(CALL_COST) and usage.unpriced_calls == 0
    assert usage.remaining_usd is None


def test_per_call_parameter_overrides_the_controller_default():
    llm = client()
    response = arun(lambda: llm.complete(MESSAGES, mock_response="override", temperature=0.2))
    assert response.choices[0].message.content == "override"


def test_budget_exhausted_mid_run():
    llm = client(max_cost=0.12)  # allows calls while spent < 0.12: 0 -> 0.05 -> 0.10 -> 0.15

    async def run():
        texts = []
        for _ in range(3):
            texts.append((await llm.complete(MESSAGES)).choices[0].message.content)
        with pytest.raises(BudgetExhaustedError) as info:
            await llm.complete(MESSAGES)
        return texts, info.value

    texts, error = arun(run)
    assert texts == ["attack!"] * 3
    assert error.spent_usd == pytest.approx(0.15) and error.max_cost_usd == 0.12
    usage = llm.usage
    assert usage.calls == 3 and usage.cost_usd == pytest.approx(0.15)
    assert usage.remaining_usd == 0.0 and llm.budget_exhausted
    with pytest.raises(BudgetExhaustedError):  # stays exhausted
        arun(lambda: llm.complete(MESSAGES))


def test_zero_budget_refuses_the_first_call(no_network):
    with pytest.raises(BudgetExhaustedError):
        arun(lambda: client(max_cost=0.0).complete(MESSAGES))


def test_budget_without_price_is_refused_before_spending(no_network):
    llm = LLMClient(model="openai/unknown-local-model", max_cost=1.0, defaults={"mock_response": "x"})
    with pytest.raises(ValueError, match="no price"):
        arun(lambda: llm.complete(MESSAGES))


def test_known_model_is_priced_by_litellm():
    llm = LLMClient(model="gpt-4o-mini", api_key=SECRET, max_cost=1.0, defaults={"mock_response": "x"})
    arun(lambda: llm.complete(MESSAGES))
    assert 0 < llm.usage.cost_usd < 0.01


def test_unpriced_model_without_budget_is_counted():
    llm = LLMClient(model="openai/unknown-local-model", defaults={"mock_response": "x"})
    arun(lambda: llm.complete(MESSAGES))
    assert llm.usage.unpriced_calls == 1 and llm.usage.cost_usd == 0.0 and llm.usage.calls == 1


def test_accounting_is_safe_across_threads_and_tasks():
    llm = client()

    async def burst():
        await asyncio.gather(*(llm.complete(MESSAGES) for _ in range(10)))

    threads = [LoopThread(burst, timeout=60) for _ in range(4)]
    for thread in threads:
        thread.join(60)
    usage = llm.usage
    assert usage.calls == 40 and usage.prompt_tokens == 400 and usage.completion_tokens == 800
    assert usage.cost_usd == pytest.approx(40 * CALL_COST)


def test_secret_str_key_is_accepted_and_hidden(monkeypatch):
    monkeypatch.setenv("SIEGEFLOW_TEST_ATTACKER_KEY", SECRET)
    for llm in (client(api_key=SecretStr(SECRET)), client(api_key=None, api_key_env="SIEGEFLOW_TEST_ATTACKER_KEY")):
        assert SECRET not in repr(llm) and SECRET not in str(llm)
        assert "api_key='set'" in repr(llm) or "api_key=set" in repr(llm)
        assert SECRET not in repr(llm.usage)


def _fake_transient_then_real(monkeypatch, failures: list[BaseException]):
    import litellm

    calls = []
    real = llm_module._acompletion

    async def flaky(**kwargs):
        calls.append(kwargs)
        if failures:
            raise failures.pop(0)
        return await real(**kwargs)

    monkeypatch.setattr(llm_module, "_acompletion", flaky)
    return calls, litellm


def test_transient_errors_are_retried_with_backoff(monkeypatch):
    import litellm

    failures = [
        litellm.RateLimitError("slow down", llm_provider="openai", model="m"),
        litellm.InternalServerError("oops", llm_provider="openai", model="m"),
    ]
    calls, _ = _fake_transient_then_real(monkeypatch, failures)
    llm = client(backoff_base_s=0.001)
    response = arun(lambda: llm.complete(MESSAGES))
    assert response.choices[0].message.content == "attack!"
    assert len(calls) == 3 and llm.usage.retries == 2 and llm.usage.calls == 1
    # the locked values are what litellm receives, every attempt
    assert {(c["model"], c["api_key"]) for c in calls} == {("openai/attacker-local", SECRET)}


def test_non_transient_errors_are_not_retried(monkeypatch):
    import litellm

    calls, _ = _fake_transient_then_real(
        monkeypatch, [litellm.BadRequestError("bad", model="m", llm_provider="openai")]
    )
    llm = client(backoff_base_s=0.001)
    with pytest.raises(litellm.BadRequestError):
        arun(lambda: llm.complete(MESSAGES))
    assert len(calls) == 1 and llm.usage.failed_calls == 1 and llm.usage.retries == 0


def test_retries_give_up_after_max_retries(monkeypatch):
    import litellm

    calls, _ = _fake_transient_then_real(
        monkeypatch, [litellm.InternalServerError("down", llm_provider="openai", model="m") for _ in range(5)]
    )
    llm = client(backoff_base_s=0.001, max_retries=2)
    with pytest.raises(litellm.InternalServerError):
        arun(lambda: llm.complete(MESSAGES))
    assert len(calls) == 3 and llm.usage.retries == 2 and llm.usage.failed_calls == 1


def test_http_retry_key_and_logs(caplog):
    """Real HTTP: 429 twice then success; the server checks the locked key; nothing logs it."""
    caplog.set_level(logging.DEBUG)
    with OpenAIServer(api_key=SECRET, faults=[Fault(status=429, first=2)]) as server:
        llm = LLMClient(
            model="openai/siegeflow-test", api_base=server.base_url, api_key=SecretStr(SECRET),
            backoff_base_s=0.01, max_cost=1.0, **PRICES,
        )
        response = arun(lambda: llm.complete(MESSAGES, max_tokens=16))
        assert response.choices[0].message.content
        assert server.stats()["chat_requests"] == 3
        assert llm.usage.retries == 2 and llm.usage.calls == 1 and llm.usage.cost_usd > 0

        wrong = LLMClient(model="openai/siegeflow-test", api_base=server.base_url, api_key="sk-wrong-key-1")
        with pytest.raises(Exception) as info:
            arun(lambda: wrong.complete(MESSAGES))
        assert getattr(info.value, "status_code", None) == 401
        assert wrong.usage.retries == 0  # an auth failure is not transient
    assert any("retry 1/3" in r.getMessage() for r in caplog.records)
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert SECRET not in logged and "sk-wrong-key-1" not in logged
    assert SECRET not in repr(llm) and SECRET not in str(info.value)
