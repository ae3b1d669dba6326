"""The flow's failure hooks never raise: Prefect would print their traceback over the flow's
own, and a hook that dies leaves nothing more finalized than a hook that logs and returns."""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import pytest

from flows.hooks import finalize_cancelled_run, finalize_failed_run


@pytest.mark.parametrize("hook", [finalize_failed_run, finalize_cancelled_run])
def test_a_hook_whose_store_is_unreachable_logs_one_line_and_returns(
    hook: object, caplog: pytest.LogCaptureFixture,
) -> None:
    flow_run = SimpleNamespace(
        id=uuid.uuid4(),
        parameters={"db_url": "postgresql+psycopg://postgres@127.0.0.1:1/test"},
    )
    state = SimpleNamespace(name="Failed", message="boom")
    with caplog.at_level(logging.ERROR, logger="siegeflow.flows"):
        hook(None, flow_run, state)  # type: ignore[operator]  # a hook, called as Prefect does
    (record,) = [r for r in caplog.records if r.name == "siegeflow.flows"]
    assert "store is unreachable" in record.getMessage()
    assert "port 1 failed" in record.getMessage() and "Traceback" not in record.getMessage()
