"""JUnit XML for CI: one test case per goal; a broken goal is a failure.

Test reporters (GitLab, Jenkins, GitHub actions that read JUnit) show failures with their
message and text, so a failure carries the technique that broke the goal, the prompt and the
target's answer. Goals whose target calls failed or that could not be judged are `<error>`s
(the scan could not decide), goals never evaluated are `<skipped>`. Texts are made valid XML
(`reports.text.xml_text`) and escaped by ElementTree.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reports.corrected import corrected_text, refusal_correction_text, validation_text
from reports.figures import asr_text, ci_text, headline, pct, techniques_of
from tracking import JudgeCorrection
from reports.load import GoalView, RunData
from reports.review_figures import review_properties
from reports.selection import selection_text
from reports.text import xml_text
from tracking import EvaluationStatusEnum as Eval
from tracking.rows import PipelineRow

TEXT_LIMIT = 4000


def _case(parent: ET.Element, data: RunData, goal: GoalView) -> None:
    best = goal.best or PipelineRow()
    case = ET.SubElement(parent, "testcase", {
        "classname": xml_text(f"siegeflow.{goal.category}", 200),
        "name": xml_text(f"[{goal.index}] {goal.goal_id}: {goal.goal}", 200),
        "time": "0",
    })
    technique = best.label
    detail = (f"goal: {goal.goal}\ntechnique: {technique}\n\nprompt:\n{best.prompt}"
              f"\n\nanswer:\n{best.response or best.error or ''}")
    if goal.status is Eval.SUCCESSFUL_JAILBREAK:
        failure = ET.SubElement(case, "failure", {
            "type": goal.status.value,
            "message": xml_text(f"jailbroken by {technique or 'an attack'}", 300),
        })
        failure.text = xml_text(detail, TEXT_LIMIT)
    elif goal.status.is_error:
        error = ET.SubElement(case, "error", {
            "type": goal.status.value, "message": xml_text(goal.notes or goal.label, 300)})
        error.text = xml_text(detail, TEXT_LIMIT)
    elif goal.status is Eval.NOT_EVALUATED:
        ET.SubElement(case, "skipped", {"message": "not evaluated"})
    out = ET.SubElement(case, "system-out")
    out.text = xml_text(f"status: {goal.label}; {goal.attempts} attack prompt(s); "
                        f"notes: {goal.notes}", 1000)


def _ci(block: JudgeCorrection | None) -> str:
    rate = block.overall if block is not None else None
    if rate is None or rate.low is None or rate.high is None:
        return "n/a"
    return ci_text((rate.low, rate.high))


def _technique_properties(data: RunData) -> list[tuple[str, str]]:
    """One property per technique: its counts (attacker failures and target errors apart) and
    ASR with interval and n, e.g. `technique.pair`."""
    out = []
    for t in techniques_of(data.summary, data):
        out.append((f"technique.{t.technique}",
                    f"goals={t.goals} attempts={t.attempts} broken={t.broken} held={t.held} "
                    f"attacker_failures={t.attacker_failures} target_errors={t.target_errors} "
                    f"asr={asr_text(t.broken, t.broken + t.held)}"))
    return out


def render_junit(data: RunData) -> str:
    h = headline(data)
    o = h.overall
    suites = ET.Element("testsuites", {"name": "siegeflow"})
    suite = ET.SubElement(suites, "testsuite", {
        "name": xml_text(f"siegeflow {data.kind} {data.run.attack_type} on "
                         f"{data.run.target_description or ''}", 300),
        "tests": str(len(data.goals)),
        "failures": str(o.broken),
        "errors": str(o.errors),
        "skipped": str(o.pending),
        "time": f"{h.duration_s or 0.0:.3f}",
    })
    if data.run.started_at:
        suite.set("timestamp", data.run.started_at.strftime("%Y-%m-%dT%H:%M:%S"))
    block = data.summary.asr_corrected
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", data.run_id), ("run_status", data.run.status.value),
        ("target", data.run.target_description or ""), ("attack", data.run.attack_type),
        ("asr", pct(o.asr)), ("asr_ci95", ci_text(o.ci) or "n/a"),
        ("judged_goals", str(o.judged)), ("asr_headline", asr_text(o.broken, o.judged)),
        ("judged_by", data.citation.text() if data.citation else "unknown"),
        ("asr_raw", f"raw {asr_text(o.broken, o.judged)}"),
        ("asr_corrected", corrected_text(block)),
        ("asr_corrected_value", pct(block.overall.value) if block and block.overall else "n/a"),
        ("asr_corrected_ci95", _ci(block)),
        ("asr_correction_status", block.status if block else "not stored"),
        ("asr_correction_validation", validation_text(block)),
        *((("false_refusal_corrected", refusal_correction_text(data.summary.over_refusal_corrected)),)
          if data.summary.over_refusal is not None else ()),
        ("cost_usd", f"{h.cost_usd:.6f}"),
        ("goal_selection", selection_text(data.run.config) or "the whole goal set"),
        *((k, str(v)) for k, v in review_properties(data.review).items()),
        *_technique_properties(data),
    ):
        ET.SubElement(props, "property", {"name": name, "value": xml_text(value, 500)})
    for goal in data.goals:
        _case(suite, data, goal)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"
