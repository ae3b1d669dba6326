"""The Prefect UI (issue 21, part 6): a siegeflow run's flow run is named after the run
(attack, target, short run id) and tagged, read back from the Prefect API; tags never carry
an API base."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

from typer.testing import CliRunner

from cli.main import app
from flows.naming import run_name, run_tags, short_value
from targets import TargetConfig
from tests.support.openai_server import OpenAIServer
from tracking import get_backend

runner = CliRunner()


def test_names_and_tags_are_short_and_free_of_credentials() -> None:
    target = TargetConfig(model="openai/gpt-4o-mini", api_base="https://user:pw@host/v1")
    tags = run_tags(kind="attack", attack="encodings", target=target)
    assert tags == ["siegeflow", "kind:attack", "attack:encodings", "target:openai/gpt-4o-mini"]
    assert all("pw" not in t and "host" not in t and len(t) <= 60 for t in tags)
    assert run_name(attack="pair", target=target, run_id="0123456789abcdef") == (
        "pair vs openai/gpt-4o-mini · 01234567")
    assert short_value("https://user:secret@example.com/model") == "model"
    assert short_value("a b c" * 40).endswith("~") and len(short_value("x" * 100)) == 48


def test_flow_run_is_named_and_tagged_in_the_prefect_api(prefect_api_url: str,
                                                         tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/names.db"
    with OpenAIServer() as server:
        result = runner.invoke(app, [
            "run", "--target", "openai/siegeflow-test", "--api-base", server.base_url,
            "--attack", "templates", "--attack-option", 'variants=["role_play"]',
            "--judge", "refusal", "--limit", "1", "--db", db,
        ], env={"COLUMNS": "160", "PREFECT_API_URL": prefect_api_url})
    assert result.exit_code in (0, 3), result.output
    (run,) = get_backend(db).list_runs()
    assert run.prefect_flow_run_id

    async def read() -> tuple[str, list[str]]:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            flow_run = await client.read_flow_run(UUID(run.prefect_flow_run_id))
        return flow_run.name, list(flow_run.tags)

    name, tags = asyncio.run(read())
    assert name == f"templates vs openai/siegeflow-test · {run.id[:8]}"
    assert {"siegeflow", "kind:attack", "attack:templates",
            "target:openai/siegeflow-test"} <= set(tags)
    assert not any("127.0.0.1" in t or "http" in t for t in tags)
