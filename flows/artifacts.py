"""Publish a finished run's Prefect artifacts: the goal table, the markdown summary and a link
to the HTML report. What they say is built in `reports.artifacts` (Prefect-free); this module
only writes the report file and hands the pieces to Prefect."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import runtime
from prefect.artifacts import (
    acreate_link_artifact,
    acreate_markdown_artifact,
    acreate_table_artifact,
)

from judges.citation import cite_run, store_lookup
from reports.artifacts import goal_table, report_markdown, summary_markdown, write_html_report
from tasks.context import artifact_key
from tracking import PipelineRow, RunSummary, SQLBackend, default_db_url, get_backend

if TYPE_CHECKING:
    from reports.digest import RunDigest
    from reports.review.items import ReviewFigures

#: Rows of the Prefect goal table: the API stores an artifact's data whole in one database row
#: and the UI renders every row, so a scan of many thousand goals gets the first ones (broken
#: first) and a closing row saying how many more the HTML report and the export have.
MAX_TABLE_GOALS = 1000

logger = logging.getLogger("siegeflow.flows")


def _flow_backend() -> Any:
    """The store of the flow run being executed (its `db_url` parameter, else the default)."""
    params = runtime.flow_run.parameters or {}
    return get_backend(params.get("db_url") or default_db_url())


async def publish_run_artifacts(
    run_id: str,
    summary: RunSummary,
    rows: list[PipelineRow],
    results: list[Any],
    *,
    backend: SQLBackend | None = None,
    digest: RunDigest | None = None,
) -> Path | None:
    """Publish the goal table, the markdown summary and a link to the run's HTML report.

    The report file is written first (from `rows` and `results`, which the flow read from the
    store; `backend` defaults to the flow's; `digest`: the run reduced goal by goal, whose best
    rows the report shows), so the summary can say where it is. The goal table has one row per
    goal (each goal's best row), at most `MAX_TABLE_GOALS`. A report that
    cannot be written (disk full, read-only folder) is logged and named in the summary; it never
    fails the run, whose data is already stored.
    """
    path: Path | None = None
    error: str | None = None
    backend = backend or _flow_backend()
    run = backend.get_run(run_id)
    citation = cite_run(run.parameters if run else None, store_lookup(backend))
    try:
        path = await asyncio.to_thread(write_html_report, backend, run_id, rows=rows,
                                       results=results, digest=digest)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc.strerror or exc}"
        logger.warning("HTML report for run %s not written: %s", run_id, error)
    threshold = summary.success_threshold or 0.5
    await acreate_table_artifact(
        table=goal_table(results, rows, threshold, limit=MAX_TABLE_GOALS),
        key=artifact_key(run_id, "goals"),
        description="Per goal: status, best attack prompt, the target's answer, judge verdicts.",
    )
    await acreate_markdown_artifact(
        markdown=summary_markdown(summary, citation) + report_markdown(path, run_id, error),
        key=artifact_key(run_id, "summary"),
        description="ASR overall and per category, errors, judge agreement, cost and time.",
    )
    if path is not None:
        await acreate_link_artifact(
            link=path.resolve().as_uri(),
            link_text=f"HTML report of run {run_id[:8]} ({path.name})",
            key=artifact_key(run_id, "report"),
            description="The self-contained HTML report: open the file in a browser.",
        )
    return path


async def publish_review_summary(backend: SQLBackend, run_id: str, review: ReviewFigures) -> bool:
    """The run's summary artifact again, now with a person's review of its verdicts.

    Labels are made after the run ended, so the version published then cannot hold them: a new
    version under the same key is linked to the run's flow run (the Prefect UI shows the latest).
    False when the run has no summary or no recorded flow run (nothing to attach it to).
    """
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    run = backend.get_run(run_id)
    if run is None or not run.summary or not run.prefect_flow_run_id:
        return False
    summary = RunSummary.parse(run.summary)
    citation = cite_run(run.parameters, store_lookup(backend))
    report = Path(summary.report_path) if summary.report_path else None
    markdown = summary_markdown(summary, citation, review=review) + report_markdown(
        report, run_id, None if report else "not written when the run ended")
    async with get_client() as client:
        await client.create_artifact(ArtifactCreate(
            key=artifact_key(run_id, "summary"), type="markdown", data=markdown,
            description="ASR overall and per category, errors, judge agreement, cost and time; "
                        "with the review of the run's verdicts by people.",
            flow_run_id=UUID(run.prefect_flow_run_id),
        ))
    return True
