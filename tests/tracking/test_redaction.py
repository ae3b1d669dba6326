"""No API key or secret reaches the database or the logs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import pytest
import sqlalchemy as sa

from tracking import RedactingFilter, SQLBackend, TrackingCoordinator, redact, redact_text

SECRETS = [
    "sk-proj-AAAAbbbbCCCCdddd1234567890",
    "Bearer-token-value-0123456789",
    "ghp_abcdefghijklmnopqrstuvwxyz0123",
    "hunter2-password",
    "cookie-session-abcdef",
    "AKIAABCDEFGHIJKLMNOP",
    "xoxb-1234567890-abcdef",
    "hf_abcdefghijklmnopqrstuvwxyz0123456",
    "pg-password-4242",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdef123456", "Authorization: Bearer ***"),
        ("key sk-abcdefghijklmnop1234 here", "key sk-*** here"),
        ("postgresql+psycopg://user:pw123@host/db", "postgresql+psycopg://user:***@host/db"),
        ("https://x.io/v1?api_key=abc123xyz&x=1", "https://x.io/v1?api_key=***&x=1"),
        ("password=hunter22", "password=***"),
        ('{"api_key": "abcdefgh"}', '{"api_key": "***"}'),
        ("x-api-key: abcdefgh1234", "x-api-key: ***"),
        ("max_tokens=256 tokens used", "max_tokens=256 tokens used"),
        ("The key to success is practice", "The key to success is practice"),
        ("short", "short"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_redact_structures() -> None:
    class Mode(Enum):
        A = "a"

    @dataclass
    class Cfg:
        model: str
        api_key: str

    value = {
        "api_key": "x",
        "API-KEY": "y",
        "apiKey": "z",
        "OPENAI_API_KEY": "w",
        "max_tokens": 256,
        "prompt_tokens": 3,
        "use_token": True,
        "password": 1234,
        "headers": {"Authorization": "Bearer abc", "Content-Type": "json", "Cookie": "c"},
        "credentials": {"user": "u", "pass": "p"},
        "client_secret": None,
        "keywords": {"cyber": ["malware"]},
        "tokenizer": "gpt2",
        "nested": [{"token": "abc"}, ("sk-abcdefghijklmnopqrstu",)],
        "when": datetime(2024, 1, 1, tzinfo=UTC),
        "mode": Mode.A,
        "blob": b"1234",
        "path": Path("/tmp/x"),
        "nan": float("nan"),
        "cfg": Cfg(model="m", api_key="k"),
        3: "int key",
    }
    out = redact(value)
    assert out["api_key"] == out["API-KEY"] == out["apiKey"] == out["OPENAI_API_KEY"] == "***"
    assert out["max_tokens"] == 256 and out["prompt_tokens"] == 3 and out["use_token"] is True
    assert out["password"] == "***" and out["client_secret"] is None
    assert out["headers"] == {"Authorization": "***", "Content-Type": "json", "Cookie": "***"}
    assert out["credentials"] == "***"
    assert out["keywords"] == {"cyber": ["malware"]} and out["tokenizer"] == "gpt2"
    assert out["nested"] == [{"token": "***"}, ["sk-***"]]
    assert out["when"] == "2024-01-01T00:00:00+00:00" and out["mode"] == "a"
    assert out["blob"] == "<4 bytes>" and out["path"] == "/tmp/x" and out["nan"] == "nan"
    assert out["cfg"] == {"model": "m", "api_key": "***"} and out["3"] == "int key"
    json.dumps(out)  # always serialisable
    assert value["api_key"] == "x"  # the input is not modified


def test_redacting_filter() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "using %s", ("sk-abcdefghijklmnopqrstu",), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "using sk-***"


def _dump(engine: sa.Engine) -> str:
    parts = []
    with engine.connect() as conn:
        for table in ("runs", "results", "traces", "attempts", "judgments"):
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                parts.append(json.dumps([str(v) for v in row]))
    return "\n".join(parts)


def test_no_secret_in_database_or_logs(backend: SQLBackend, caplog) -> None:
    s = SECRETS
    logger = logging.getLogger("test.secrets")
    with caplog.at_level(logging.DEBUG):
        run_id = backend.create_run(
            attack_type="templates",
            target_description=f"gpt via https://proxy/v1?api_key={s[3]}",
            config={
                "target": {"api_key": s[0], "headers": {"Authorization": f"Bearer {s[1]}"}},
                "judge": {"token": s[2], "password": s[3]},
                "aws": s[5],
            },
            parameters={"cookie": s[4], "note": f"slack {s[6]}"},
        )
        coordinator = TrackingCoordinator.create(
            backend,
            run_id,
            logger=logger,
            goals=[f"goal mentioning {s[0]}"],
            initial_metadata={"secret": s[3], "hf": s[7]},
            event_bus=lambda name, payload: logger.info("event %s %s", name, payload),
        )
        ctx = coordinator.get_goal_context(0)
        with pytest.raises(RuntimeError):
            with coordinator.step_tracker.track_step(
                "Completions",
                "STEP2",
                input_data={"api_key": s[0]},
                config={"authorization": f"Bearer {s[1]}"},
            ):
                coordinator.step_tracker.add_step_metadata("credential", s[3])
                coordinator.step_tracker.record_progress(f"using key sk-{s[0][3:]}", token=s[2])
                coordinator.goal_tracker.add_trace(
                    ctx,
                    "Completion",
                    "COMPLETION",
                    {
                        "request": {"headers": {"Authorization": f"Bearer {s[1]}"}},
                        "response": f"Sure! Here is a key: {s[0]} and {s[2]}",
                    },
                )
                raise RuntimeError(f"HTTP 401 for api_key={s[3]} via postgresql://u:{s[8]}@h/db")
        (attempt,) = backend.upsert_attempts(
            run_id,
            [
                {
                    "result_id": ctx.result_id,
                    "prompt_hash": "h",
                    "prompt": [{"role": "user", "content": f"my key is {s[0]}"}],
                    "metadata": {"api_key": s[0]},
                }
            ],
        )
        backend.record_completion(attempt, response=f"echo {s[0]}", error=f"Bearer {s[1]}")
        backend.record_judgment(attempt, "refusal", raw=f"token={s[2]}", error=f"password: {s[3]}")
        coordinator.finalize_on_error(f"crashed with {s[0]}")
        coordinator.log_summary()
    dump = _dump(backend.engine)
    assert "***" in dump
    for secret in SECRETS:
        assert secret not in dump, secret
        assert secret not in caplog.text, secret


def test_env_name_fields_keep_the_variable_name_but_not_a_pasted_key() -> None:
    """`api_key_env: MY_KEY` names a variable (resume needs it); a key pasted there is hidden."""
    kept = {"api_key_env": "MY_KEY", "judge": {"model": {"api_key_env": "JUDGE_KEY_2"}},
            "token_env": "hf_token_var"}
    assert redact(kept) == kept
    from tracking.redaction import redact_json

    assert json.loads(redact_json(kept)) == kept
    pasted = {"api_key_env": "sk-proj-AAAAbbbbCCCCdddd1234567890",
              "token_env": "abcdefghijklmnopqrstuvwxyz0123456789abcd", "api_key": "MY_KEY"}
    assert redact(pasted) == {"api_key_env": "***", "token_env": "***", "api_key": "***"}
