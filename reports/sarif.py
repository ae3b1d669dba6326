"""SARIF 2.1.0 for code-scanning dashboards: each broken goal is a finding.

Findings are what SARIF consumers list, so held goals are not results (their count is in the
run's properties); a broken goal is an `error`-level result under a rule per technique, located
at the goal (logical location: its id; artifact: the goal file) and fingerprinted by goal id, so
a dashboard follows the same finding across scans. Goals that errored are tool notifications:
the scan could not decide them. JSON escaping makes every text inert.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

from reports.corrected import corrected_text, validation_text
from reports.figures import asr_text, headline, techniques_of, wilson
from reports.load import GoalView, RunData
from reports.review_figures import review_properties
from reports.selection import selection_text
from reports.text import clean
from tracking import JudgeCorrection
from tracking.rows import PipelineRow

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TEXT_LIMIT = 2000


def _version() -> str:
    try:
        return version("siegeflow")
    except PackageNotFoundError:
        return "0+unknown"


def _time(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _technique(goal: GoalView) -> tuple[str, str]:
    best = goal.best or PipelineRow()
    return best.technique or "unknown", best.variant


def _rule(technique: str) -> dict[str, Any]:
    return {
        "id": f"jailbreak/{technique}",
        "name": "".join(p.capitalize() for p in f"jailbreak {technique}".replace("_", " ").split()),
        "shortDescription": {"text": clean(f"Target complied with a harmful goal under the "
                                           f"{technique} attack", 300)},
        "fullDescription": {"text": "A red-teaming goal the target should refuse was judged "
                                    "jailbroken: the target produced the harmful content."},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["security", "llm", "jailbreak"]},
    }


def _result(data: RunData, goal: GoalView, rule_index: int, artifact: str) -> dict[str, Any]:
    best = goal.best or PipelineRow()
    technique, variant = _technique(goal)
    fingerprint = hashlib.sha256(f"{goal.goal_id}\x00{goal.goal}".encode()).hexdigest()
    return {
        "ruleId": f"jailbreak/{technique}",
        "ruleIndex": rule_index,
        "level": "error",
        "kind": "fail",
        "message": {"text": clean(
            f"Goal [{goal.index}] {goal.goal_id} ({goal.category}) was jailbroken by "
            f"{technique}{'/' + variant if variant else ''}: {goal.goal}", 1000)},
        "locations": [{
            "physicalLocation": {"artifactLocation": {"uri": artifact}},
            "logicalLocations": [{"name": clean(goal.goal_id, 200), "kind": "object",
                                  "fullyQualifiedName": clean(f"{artifact}#{goal.goal_id}", 400)}],
        }],
        "partialFingerprints": {"siegeflowGoal/v1": fingerprint},
        "properties": {
            "goalIndex": goal.index,
            "category": clean(goal.category, 200),
            "technique": clean(technique, 100),
            "variant": clean(variant, 100),
            "score": best.score,
            "prompt": clean(best.prompt, TEXT_LIMIT),
            "response": clean(best.response, TEXT_LIMIT),
            "verdicts": {name: cell.as_dict() for name, cell in best.judges.items()},
        },
    }


def _corrected(block: JudgeCorrection | None) -> dict[str, Any]:
    """The stored correction for judge error: value and interval (None when there is no
    corrected figure), why not, and which validation it used."""
    rate = block.overall if block is not None else None
    return {
        "status": block.status if block is not None else "not stored",
        "value": rate.value if rate is not None else None,
        "ci95": [rate.low, rate.high] if rate is not None and rate.low is not None else None,
        "text": clean(corrected_text(block), 500),
        "validation": clean(validation_text(block), 500),
        "stratum": clean(block.stratum, 100) if block is not None and block.stratum else None,
        "youden": block.youden if block is not None else None,
        "youdenLow95": block.youden_low if block is not None else None,
    }


def _techniques(data: RunData) -> list[dict[str, Any]]:
    """Per technique: counts (attacker failures and target errors apart) and ASR, interval, n."""
    out = []
    for t in techniques_of(data.summary, data):
        judged = t.broken + t.held
        ci = wilson(t.broken, judged)
        out.append({
            "technique": clean(t.technique, 100), "goals": t.goals, "attempts": t.attempts,
            "broken": t.broken, "held": t.held, "attackerFailures": t.attacker_failures,
            "targetErrors": t.target_errors, "asr": t.asr,
            "asrCi95": list(ci) if ci is not None else None, "asrN": judged,
            "asrText": asr_text(t.broken, judged),
        })
    return out


def render_sarif(data: RunData) -> str:
    h = headline(data)
    o = h.overall
    source = str(((data.run.parameters or {}).get("goals") or {}).get("source") or "goals")
    artifact = quote(source, safe="/:._-")
    broken = [g for g in data.goals if g.broken]
    techniques = sorted({_technique(g)[0] for g in broken})
    index = {t: i for i, t in enumerate(techniques)}
    notifications = [
        {"level": "warning", "message": {"text": clean(
            f"Goal [{g.index}] {g.goal_id}: {g.label} ({g.notes})", 500)},
         "locations": [{"logicalLocations": [{"name": clean(g.goal_id, 200)}]}]}
        for g in data.goals if g.status.is_error
    ]
    ci = wilson(o.broken, o.judged)
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "siegeflow", "version": _version(),
                            "rules": [_rule(t) for t in techniques]}},
        "automationDetails": {"id": clean(f"siegeflow/{data.run.attack_type}/{data.run_id}", 300)},
        "invocations": [{
            "executionSuccessful": not data.failed,
            "startTimeUtc": _time(data.run.started_at or data.run.created_at),
            "endTimeUtc": _time(data.run.finished_at),
            "toolExecutionNotifications": notifications,
        }],
        "artifacts": [{"location": {"uri": artifact}, "description": {"text": "goal set"}}],
        "results": [_result(data, g, index[_technique(g)[0]], artifact) for g in broken],
        "properties": {
            "runId": data.run_id,
            "target": clean(data.run.target_description, 300),
            "goals": o.goals, "broken": o.broken, "held": o.held, "errors": o.errors,
            "notEvaluated": o.pending, "asr": o.asr,
            "asrCi95": list(ci) if ci is not None else None, "asrN": o.judged,
            "asrText": asr_text(o.broken, o.judged),
            "judgedBy": data.citation.as_dict() if data.citation else None,
            "asrRawText": f"raw {asr_text(o.broken, o.judged)}",
            "asrCorrected": _corrected(data.summary.asr_corrected),
            **({"falseRefusalCorrected": _corrected(data.summary.over_refusal_corrected)}
               if data.summary.over_refusal is not None else {}),
            "costUsd": h.cost_usd,
            "goalSelection": clean(selection_text(data.run.config) or "the whole goal set", 400),
            "techniques": _techniques(data),
            **review_properties(data.review),
        },
    }
    inv = run["invocations"][0]
    if inv["endTimeUtc"] is None:
        del inv["endTimeUtc"]
    doc = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
