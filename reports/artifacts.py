"""What the flow's Prefect artifacts show: a per-goal table, a markdown summary and a line
pointing to the HTML report (`flows.artifacts` publishes them; this module is Prefect-free).

All are built from the stored rows and results, and every untrusted string is escaped
(`reports.text`) because the Prefect UI renders markdown. The HTML report is written to a file
at the end of the run (`report_dir()`), since Prefect artifacts cannot hold a whole page.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judges.citation import Citation
from reports.cost import cost_line
from reports.review_figures import review_lines
from reports.rows import best_rows
from reports.text import md_escape
from tracking import ResultRecord, RunSummary
from tracking.rows import PipelineRow
from tracking.store import SQLBackend

if TYPE_CHECKING:
    from reports.digest import RunDigest
    from reports.review.items import ReviewFigures

_CELL = 160


def goal_table(
    results: list[ResultRecord], rows: list[PipelineRow], threshold: float,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """One row per goal with its best attempt (`rows` may be just each goal's best row); with
    `limit`, broken goals first and at most `limit`, then one row saying how many are left out."""
    best = best_rows(rows, threshold)
    table = []
    ordered = sorted(results, key=lambda r: r.goal_index)
    left = 0
    if limit is not None and len(ordered) > limit:
        left = len(ordered) - limit
        ordered = sorted(sorted(ordered, key=lambda r: r.evaluation_status.value
                                != "SUCCESSFUL_JAILBREAK")[:limit], key=lambda r: r.goal_index)
    for result in ordered:
        row = best.get(result.id) or PipelineRow()
        verdicts = ", ".join(
            f"{md_escape(name, 40)}: "
            f"{'error' if v.error else ('yes' if v.success else 'no')}"
            for name, v in sorted(row.judges.items())
        )
        # The Prefect UI renders table cells as Markdown with inline HTML: every string that
        # came from a goal file, an attacker or the target is escaped, not just cleaned.
        table.append({
            "goal": result.goal_index,
            "category": md_escape(result.category, 40),
            "status": result.evaluation_status.value,
            "technique": md_escape(
                f"{row.technique}/{row.variant}".strip("/"), 60
            ),
            "best prompt": md_escape(row.prompt or None, _CELL),
            "answer": md_escape(row.response or row.error, _CELL),
            "verdicts": verdicts,
        })
    if left:
        table.append({"goal": "…", "category": "", "status": f"{left} more goals",
                      "technique": "", "best prompt": "", "verdicts": "",
                      "answer": "not shown here: the HTML report and `siegeflow export` "
                                "have every goal"})
    return table


def summary_markdown(summary: RunSummary, citation: Citation | None = None,
                     review: ReviewFigures | None = None) -> str:
    """The run's headline figures as markdown (numbers only; untrusted text escaped): ASR with
    its Wilson 95% interval and n, and the judges that decided it with their validated
    agreement with human labels."""
    from reports.corrected import (
        asr_pair,
        category_corrected,
        refusal_with_correction,
        validation_text,
    )
    from reports.figures import summary_asr_text

    errors = summary.errors
    lines = [
        f"# siegeflow run {md_escape(str(summary.run_id), 40)}",
        "",
        f"**Attack:** {md_escape(str(summary.attack_type), 60)} · "
        f"**status:** {md_escape(str(summary.status), 20)} · "
        f"**stop:** {md_escape(summary.stop_reason or '', 30)}",
        "",
        "| goals | broken | held | errors (target) | errors (framework) | ASR [95% CI] (n) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {summary.goals_total} | {summary.successful} | "
        f"{summary.failed} | {errors.agent} | "
        f"{errors.framework} | {summary_asr_text(summary)} |",
        "",
        "ASR = broken / (broken + held), with its Wilson 95% interval and n; goals whose target "
        "calls failed or that could not be judged are excluded from the denominator and counted "
        "above.",
        "",
    ]
    if summary.rows.attacker_failures:
        lines += [f"**Attacker failures:** {summary.rows.attacker_failures} attempt(s) the "
                  "attacker model could not write (refusal, placeholder, copy of its "
                  "instructions, no translation) were recorded and never sent; "
                  f"{errors.attacker} goal(s) had nothing sent. They are not in any ASR.", ""]
    block = summary.asr_corrected
    lines += [f"**ASR:** {md_escape(asr_pair(summary, block), 400)}", "",
              f"**Correction used:** {md_escape(validation_text(block), 400)}", ""]
    if citation is not None:
        lines += [f"**Judged by:** {md_escape(citation.text(), 400)}", ""]
    for warning in summary.warnings:
        lines += [f"**Warning:** {md_escape(str(warning), 1000)}", ""]
    lines += [f"**Review:** {md_escape(line, 400)}  " for line in review_lines(review)]
    categories = summary.categories
    if categories:
        lines += ["## ASR by category", "",
                  "| category | goals | broken | held | errors | ASR [95% CI] (n) "
                  "| corrected for judge error |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, c in sorted(categories.items()):
            lines.append(
                f"| {md_escape(name, 60)} | {c.goals} | {c.successful} | "
                f"{c.failed} | {c.errors} | "
                f"{summary_asr_text(c)} | "
                f"{md_escape(category_corrected(block, name), 200)} |"
            )
        lines.append("")
    lines += technique_markdown(summary)
    if summary.over_refusal is not None:
        line = refusal_with_correction(summary.over_refusal, summary.over_refusal_corrected)
        lines += [f"**Over-refusal (benign control set):** {md_escape(line, 1000)}", ""]
    if summary.bon:
        from reports.bon import summary_line

        lines += ["## Best-of-N", "", summary_line(summary.bon), ""]
    agreement = summary.judge_agreement
    if agreement:
        lines += ["## Judge agreement", "", "| judges | kappa | items |", "|---|---:|---:|"]
        for pair, value in sorted((agreement.get("pairwise") or {}).items()):
            kappa = value.get("kappa")
            lines.append(
                f"| {md_escape(pair, 80)} | {'n/a' if kappa is None else f'{kappa:.2f}'} | "
                f"{value.get('n', 0)} |"
            )
        fleiss = agreement.get("fleiss")
        if fleiss and fleiss.get("kappa") is not None:
            lines.append(f"| all (Fleiss) | {fleiss['kappa']:.2f} | {fleiss.get('n', 0)} |")
        lines.append("")
    lines += [
        f"**Cost:** {md_escape(cost_line(summary))} · "
        f"**duration:** {summary.duration_s or 0.0:.1f} s",
    ]
    if summary.steps:
        lines += ["", "| step | status | seconds |", "|---|---|---:|"]
        for step in summary.steps:
            lines.append(
                f"| {md_escape(str(step.name), 40)} | {md_escape(str(step.status), 20)} "
                f"| {step.duration_s or 0.0:.2f} |"
            )
    return "\n".join(lines) + "\n"


def technique_markdown(summary: RunSummary) -> list[str]:
    """The per-technique table (attacker failures and target errors apart), or nothing."""
    from reports.figures import TECHNIQUE_COLUMNS, technique_cells

    if not summary.techniques:
        return []
    lines = ["## By technique", "", "| " + " | ".join(TECHNIQUE_COLUMNS) + " |",
             "|---|" + "---:|" * (len(TECHNIQUE_COLUMNS) - 1)]
    for figures in summary.techniques:
        cells = technique_cells(figures)
        lines.append("| " + " | ".join([md_escape(cells[0], 60), *cells[1:]]) + " |")
    return [*lines, ""]


def category_of(results: list[ResultRecord]) -> dict[str, str]:
    out: dict[str, str] = defaultdict(str)
    for r in results:
        out[r.id] = r.category or "uncategorized"
    return out


REPORT_DIR_ENV = "SIEGEFLOW_REPORT_DIR"


def report_dir() -> Path:
    """Where flows write each run's HTML report: `$SIEGEFLOW_REPORT_DIR`, else the user data dir."""
    from platformdirs import user_data_dir

    return Path(os.environ.get(REPORT_DIR_ENV) or Path(user_data_dir("siegeflow")) / "reports")


def write_html_report(backend: SQLBackend, run_id: str, *, rows: list[PipelineRow] | None = None,
                      results: list[ResultRecord] | None = None,
                      digest: RunDigest | None = None) -> Path:
    """Render the run's HTML report into `report_dir()`; returns the file written. `rows` and
    `results`: the finishing flow's, so they are not read again (`load_run`)."""
    from reports.html import render_report
    from reports.load import load_run

    folder = report_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.html"
    tmp = path.with_suffix(".html.tmp")
    from reports.digest import REPORT_GOALS

    data = load_run(backend, run_id, rows=None if digest is not None else rows, results=results,
                    digest=digest, detail=REPORT_GOALS)
    tmp.write_text(render_report(data),
                   encoding="utf-8")
    tmp.replace(path)
    return path


def report_markdown(path: Path | None, run_id: str, error: str | None = None) -> str:
    command = f"siegeflow report {md_escape(run_id, 40)} \\-o report\\.html"
    if path is None:
        return (f"\n**HTML report:** not written ({md_escape(error or 'unknown error', 200)}); "
                f"{command} writes it.\n")
    return (f"\n**HTML report:** {md_escape(str(path), 300)} — open it in a browser (it is one "
            f"self-contained file); {command} writes it again.\n")
