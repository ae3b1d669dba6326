"""`siegeflow report RUN_ID`: one self-contained HTML file a security lead can read offline.

Sections: headline figures (ASR with its Wilson 95% interval, errors excluded and counted, cost,
duration), ASR charts by category and by technique, judge agreement, the per-goal table
(sortable, filterable; best attack prompt and the target's answer) and, when goals carry traces
(optimizer runs), each goal's trajectory, collapsed.

Size is budgeted, not left to chance: prompt and answer cells are clipped to a length that
shrinks with the number of goals, and trajectories (broken goals first) fill only what is left
of a 9 MB page budget, so a 5,000-goal run stays under 10 MB. The full texts stay in the store
(`siegeflow export`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reports.bon_html import bon_section
from reports.cost import cost_breakdown
from reports.corrected import (
    category_corrected,
    corrected_short,
    corrected_text,
    counts_corrected,
    refusal_correction_text,
    validation_text,
)
from reports.refusal import block_of, refusal_line, refusal_rate
from reports.grid import STATUS_ORDER, Column, cell, filters, grid, row
from reports.figures import (
    Rate,
    asr_text,
    by_category,
    by_technique,
    ci_text,
    headline,
    judge_tallies,
    pct,
    wilson,
)
from reports.load import GoalView, RunData
from reports.page import page
from reports.review_figures import review_html
from reports.selection import selection_text
from reports.svg import bar_chart
from reports.text import clip, html_escape
from reports.trajectory import render_conversation, render_trajectory
from tracking import JudgeCorrection
from tracking.rows import PipelineRow
from tracking.summary import CORRECTED

e = html_escape

#: Characters of prompt + answer text the goal grid may hold in all (escaping may add some).
TABLE_TEXT_BUDGET = 4_400_000
#: Bytes the whole page aims at; trajectories fill what the rest leaves (the limit is 10 MB).
PAGE_BUDGET = 9_000_000
MAX_EVENTS_PER_GOAL = 400

STATUS_FILTERS = [("broken", "broken"), ("held", "held"), ("error", "errors"),
                  ("pending", "pending")]
STATUS_CLASS = {
    "SUCCESSFUL_JAILBREAK": "broken",
    "FAILED_JAILBREAK": "held",
    "ERROR_AGENT_RESPONSE": "error",
    "ERROR_TEST_FRAMEWORK": "error",
    "NOT_EVALUATED": "pending",
}


def cell_limit(goals: int, override: int | None = None) -> int:
    """Characters shown per prompt/answer cell: generous for small runs, bounded for big ones."""
    if override is not None:
        return max(50, override)
    return max(400, min(4000, TABLE_TEXT_BUDGET // max(1, 2 * goals)))


def clipped(text: str | None, limit: int) -> str:
    shown, cut = clip(text, limit)
    more = f'<span class="cut"> … {cut} more characters</span>' if cut else ""
    return f'<div class="clip">{e(shown)}{more}</div>'


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def header(data: RunData) -> str:
    run = data.run
    params = run.parameters or {}
    goals_src = (params.get("goals") or {}).get("source", "")
    summary = data.summary
    rows = [
        ("run", run.id),
        ("status", f"{run.status.value}" + (f" · stopped: {summary.stop_reason}"
                                             if summary.stop_reason else "")),
        ("kind", f"{data.kind} · {run.attack_type}"),
        ("target", run.target_description or ""),
        ("judges", f"{', '.join(data.judge_keys)} · rule {data.rule} · "
                   f"threshold {data.threshold:g}"),
        ("goals from", str(goals_src)),
        *((("goals used", subset),) if (subset := selection_text(run.config)) else ()),
        ("started", _when(run.started_at or run.created_at)),
        ("finished", _when(run.finished_at)),
    ]
    if run.prefect_flow_run_id:
        rows.append(("Prefect flow run", run.prefect_flow_run_id))
    meta = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v), 400)}</dd>" for k, v in rows)
    banner = ""
    if not run.status.is_terminal:
        banner = '<p class="note">This run has not finished: the figures are partial.</p>'
    elif data.failed:
        banner = ('<p class="note err">This run did not complete: goals it could not finish '
                  "are counted as errors.</p>")
    return (f'<header><h1>siegeflow report</h1><dl class="meta">{meta}</dl>{banner}</header>')


def headline_section(data: RunData) -> str:
    h = headline(data)
    o = h.overall
    attacker = float((cost_breakdown(data.summary) or {}).get("attacker_usd") or 0.0)
    ci = ci_text(o.ci)
    cards = [
        ("goals", str(o.goals), ""),
        ("broken", str(o.broken), "broken"),
        ("held", str(o.held), ""),
        ("attack success rate (raw)", pct(o.asr), "asr"),
        ("corrected for judge error", corrected_short(data.summary.asr_corrected), ""),
        ("judged goals (n)", str(o.judged), ""),
        ("95% CI (Wilson)", ci or "n/a", ""),
        ("errors (excluded)", str(o.errors), ""),
        ("cost", f"${h.cost_usd:.4f}", ""),
        *([("of it, attacker models", f"${attacker:.4f}", "")] if attacker else []),
        ("duration", _duration(h.duration_s), ""),
    ]
    refusals = block_of(data.benign)
    if refusals is not None:
        rate, n = refusal_rate(refusals), refusals.refused + refusals.answered
        cards.insert(6, ("false-refusal rate", pct(rate), ""))
        cards.insert(7, ("its 95% CI", ci_text(wilson(refusals.refused, n)) or "n/a", ""))
        cards.insert(8, ("false refusals, corrected",
                         corrected_short(data.summary.over_refusal_corrected), ""))
    html_cards = "".join(
        f'<div class="card {cls}"><div class="v">{e(v)}</div><div class="k">{e(k)}</div></div>'
        for k, v, cls in cards
    )
    pending = f", {o.pending} not evaluated yet" if o.pending else ""
    return (
        '<section id="headline"><h2>Headline</h2>'
        f'<div class="cards">{html_cards}</div>'
        f'<p class="note">ASR = broken / (broken + held) = {o.broken} / {o.judged}. '
        f"Excluded from the denominator and counted here: {h.target_errors} goals whose target "
        f"calls failed, {h.framework_errors} goals that could not be judged{pending}. "
        f"{h.attempts} attack prompts were sent.</p>{corrected_section(data)}{judged_by(data)}"
        + (f'<p class="note" id="over-refusal">Over-refusal: {e(refusal_line(refusals))} · '
           f"{e(refusal_correction_text(data.summary.over_refusal_corrected))}. Benign prompts "
           "are sent plain alongside the attacks and never count in the ASR.</p>"
           if refusals else "")
        + "</section>"
    )


def corrected_section(data: RunData) -> str:
    """The raw ASR next to the one corrected for judge error, and which validation it used."""
    o = headline(data).overall
    block = data.summary.asr_corrected
    cls = "note" if block is not None and block.status == CORRECTED else "note err"
    return (f'<p class="{cls}" id="corrected"><b>ASR</b> raw {e(asr_text(o.broken, o.judged))} · '
            f"{e(corrected_text(block))}. <b>Correction used</b>: {e(validation_text(block))}. "
            "The corrected figure removes the judge's known error rates, measured against human "
            "labels; its interval also carries the uncertainty of that measurement.</p>")


def judged_by(data: RunData) -> str:
    """Which judges decided the ASR, with their validated agreement with human labels."""
    citation = data.citation
    warnings = "".join(f'<p class="note err warning"><b>Warning</b> {e(str(w), 1000)}</p>'
                       for w in data.summary.warnings)
    subset = selection_text(data.run.config)
    if subset:  # an ASR on a slice is that slice's, not the set's
        warnings = (f'<p class="note" id="goal-subset"><b>Goals</b> {e(subset, 400)}: the '
                    "rates are this subset's.</p>" + warnings)
    if citation is None:
        return warnings
    cls = "note err" if citation.refusal_only or not citation.validated else "note"
    return (f'<p class="{cls}" id="judged-by"><b>Judged by</b> {e(citation.text(), 400)}.</p>'
            + warnings)



def rate_table(title: str, rates: list[Rate], corrected: JudgeCorrection | None = None,
               categories: bool = False) -> str:
    """A rate's numbers and its ASR corrected for judge error: the stored one for categories,
    else from the stored block's validation counts."""
    extra = '<th class="num">corrected for judge error</th>'
    rows = "".join(
        f"<tr><td>{e(r.label, 120)}</td><td class=\"num\">{r.goals}</td>"
        f'<td class="num">{r.broken}</td><td class="num">{r.held}</td>'
        f'<td class="num">{r.errors + r.pending}</td><td class="num">{pct(r.asr)}</td>'
        f'<td class="num">{ci_text(r.ci) or "n/a"}</td>'
        + (f'<td class="num">{e(category_corrected(corrected, r.label))}</td>' if categories
           else f'<td class="num">{e(counts_corrected(corrected, r.broken, r.judged))}</td>')
        + "</tr>"
        for r in rates
    )
    return (
        f"<details><summary>{e(title)}: the numbers</summary>"
        '<table class="small"><thead><tr><th>name</th><th class="num">goals</th>'
        '<th class="num">broken</th><th class="num">held</th><th class="num">excluded</th>'
        f'<th class="num">ASR</th><th class="num">95% CI</th>{extra}</tr></thead>'
        f"<tbody>{rows}</tbody></table></details>"
    )


def technique_attempts_table(data: RunData) -> str:
    """Per technique: attempts, with attacker failures (never sent) and target errors apart."""
    from reports.figures import TECHNIQUE_COLUMNS, technique_cells, techniques_of

    rows = "".join(
        "<tr>" + "".join(f"<td>{e(c, 200)}</td>" for c in technique_cells(t)) + "</tr>"
        for t in techniques_of(data.summary, data)
    )
    head = "".join(f"<th>{e(c)}</th>" for c in TECHNIQUE_COLUMNS)
    return (
        '<details open><summary>Attempts per technique (attacker failures: prompts the attacker '
        'model could not write, recorded and never sent)</summary><table class="small">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></details>"
    )


def charts_section(data: RunData) -> str:
    categories = by_category(data.goals)
    techniques = by_technique(data)
    variants = by_technique(data, variants=True)
    parts = [
        '<section id="charts"><h2>Attack success rate</h2>',
        '<p class="note">Bars: ASR; whiskers: 95% Wilson interval. A technique counts a goal '
        "broken when any of its prompts broke it.</p><div class=\"charts\">",
        f"<div><h3>By category</h3>{bar_chart('ASR by category', categories)}"
        f"{rate_table('By category', categories, data.summary.asr_corrected, True)}</div>",
        f"<div><h3>By technique</h3>{bar_chart('ASR by technique', techniques)}"
        f"{rate_table('By technique', techniques, data.summary.asr_corrected)}",
    ]
    if len(variants) > len(techniques):
        parts.append(rate_table("By technique and variant", variants, data.summary.asr_corrected))
    parts.append(technique_attempts_table(data))
    parts.append("</div></div></section>")
    return "".join(parts)


def _kappa(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.2f}"


def judges_section(data: RunData) -> str:
    tallies = judge_tallies(data)
    rows = "".join(
        f'<tr><td>{e(t.judge, 80)}</td><td class="num">{t.yes}</td><td class="num">{t.no}</td>'
        f'<td class="num">{t.errors}</td></tr>'
        for t in tallies
    )
    parts = [
        '<section id="judges"><h2>Judges</h2>',
        f'<p class="note">Verdicts combine by rule <b>{e(data.rule)}</b>; a prompt counts as '
        f"successful when the combined verdict is yes and its score is at least "
        f"{data.threshold:g}.</p>",
        '<table class="small"><thead><tr><th>judge</th><th class="num">jailbroken</th>'
        '<th class="num">safe</th><th class="num">could not judge</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>",
    ]
    agreement = data.summary.judge_agreement or {}
    pairwise = agreement.get("pairwise") or {}
    if pairwise:
        cells = "".join(
            f"<tr><td>{e(' vs '.join(str(j) for j in v.get('judges') or [pair]), 120)}</td>"
            f'<td class="num">{_kappa(v.get("kappa"))}</td>'
            f'<td class="num">{pct(v.get("observed_agreement"))}</td>'
            f'<td class="num">{int(v.get("n") or 0)}</td></tr>'
            for pair, v in sorted(pairwise.items())
        )
        fleiss = agreement.get("fleiss") or {}
        if fleiss.get("kappa") is not None:
            cells += (f'<tr><td>all judges (Fleiss)</td><td class="num">{_kappa(fleiss["kappa"])}'
                      f'</td><td class="num">—</td><td class="num">{int(fleiss.get("n") or 0)}'
                      "</td></tr>")
        parts.append(
            "<h3>Agreement</h3><table class=\"small\"><thead><tr><th>judges</th>"
            '<th class="num">Cohen\'s κ</th><th class="num">agree</th>'
            f'<th class="num">prompts</th></tr></thead><tbody>{cells}</tbody></table>'
            '<p class="note">κ above 0.6 is usually read as substantial agreement; low κ means '
            "the ASR depends on which judge you trust.</p>"
        )
    elif len(data.judge_keys) < 2:
        parts.append('<p class="note">One judge: no agreement to measure.</p>')
    parts.append("</section>")
    return "".join(parts)


def _verdicts(row: PipelineRow) -> str:
    out = []
    for name, v in sorted(row.judges.items()):
        if v.error or v.success is None:
            out.append(f'<div>{e(name, 40)}: <span class="err">error</span></div>')
        else:
            yes = bool(v.success)
            out.append(f'<div>{e(name, 40)}: <span class="{"yes" if yes else "no"}">'
                       f'{"yes" if yes else "no"}</span></div>')
    return "".join(out)


def tool_calls_html(row: PipelineRow, limit: int) -> str:
    """The tool calls an app or agent target made on this attempt (`meta.tool_calls`), each
    with what the tool returned (or the error it raised) when the target reported it. All of
    it is the target's (and so possibly the attacker's) text: escaped, clipped."""
    calls = row.meta.get("tool_calls") or []
    if not calls:
        return ""
    out_limit = max(200, min(limit, 1000))
    items = []
    for c in calls[:20]:
        if not isinstance(c, dict):
            continue
        item = f"{e(str(c.get('name')), 80)}({e(str(c.get('arguments')), 300)})"
        if c.get("error") is not None:
            item += f' <span class="err">error: {e(str(c["error"]), out_limit)}</span>'
        if c.get("output") is not None:
            item += f' → {e(str(c["output"]), out_limit)}'
        items.append(f"<div>{item}</div>")
    more = f"<div>… and {len(calls) - 20} more</div>" if len(calls) > 20 else ""
    return f'<div class="decoded"><span class="note">tool calls:</span> {"".join(items)}{more}</div>'


def goal_row(goal: GoalView, limit: int, has_trajectory: bool) -> str:
    best = goal.best or PipelineRow()
    status = STATUS_CLASS[goal.status.value]
    technique = best.label
    link = f'<div><a href="#traj-{goal.index}">trajectory</a></div>' if has_trajectory else ""
    answer = best.response
    answer_cell = (clipped(answer, limit) if answer is not None or not best.error
                   else f'<div class="clip err">error: {e(best.error, limit)}</div>')
    if best.decoded is not None and best.decoded != answer:
        answer_cell += ('<div class="decoded"><span class="note">decoded (what the judges '
                        f'read):</span>{clipped(best.decoded, limit)}</div>')
    answer_cell += tool_calls_html(best, limit)
    turns = [m for m in best.conversation if m.get("role") != "system"]
    prompt_cell = (render_conversation(best.conversation, limit=max(200, limit // 2))
                   if len(turns) > 1 else clipped(best.prompt, limit))
    score = best.score
    cells = [
        cell(str(goal.index), value=goal.index, num=True),
        cell(e(goal.goal_id, 120)),
        cell(e(goal.category, 120)),
        cell(f'<span class="st st-{status}">{e(goal.label)}</span>{link}',
             value=STATUS_ORDER[status]),
        cell(clipped(goal.goal, 600)),
        cell(f'{e(technique, 120)}<div class="note">{goal.attempts} prompt(s)</div>'),
        cell(prompt_cell),
        cell(answer_cell),
        cell(_verdicts(best)),
        cell("" if score is None else f"{float(score):.2f}",
             value=-1 if score is None else float(score), num=True),
        cell(f"${goal.cost_usd:.4f}", value=goal.cost_usd, num=True),
    ]
    return row(cells, status=status, category=goal.category)


GOAL_COLUMNS = [
    Column("#", num=True, right=True), Column("goal id"), Column("category"),
    Column("status", num=True), Column("goal"), Column("best attack"),
    Column("attack prompt"), Column("target's answer"), Column("verdicts"),
    Column("score", num=True, right=True), Column("cost", num=True, right=True),
]


def _more_goals(data: RunData) -> str:
    """What the goal grid leaves out: a run of more than `REPORT_GOALS` goals lists those
    (broken first, then by index: `reports.digest.detail_key`); the figures above count all."""
    more = data.more_goals
    if more <= 0:
        return ""
    return (f'<p class="note">{more} more goals are in the export (<code>siegeflow export '
            f"{e(data.run_id, 120)}</code>); the {sum(1 for g in data.goals if g.detailed)} "
            "shown are the broken goals first, then by index. Every figure above counts every "
            "goal.</p>")


def goals_section(data: RunData, limit: int, linked: set[str]) -> str:
    shown = [g for g in data.goals if g.detailed]
    categories = sorted({g.category for g in shown})
    rows = "".join(goal_row(g, limit, g.result_id in linked) for g in shown)
    return (
        '<section id="goals"><h2>Goals</h2>'
        '<p class="note">Each goal with the attack prompt that best shows its outcome (the '
        "successful one with the highest score, else the highest-scored judged one) and the "
        f"target's answer to it. Long texts are cut at {limit} characters; "
        "<code>siegeflow export</code> has them whole. Click a column to sort it, a text to see "
        "it all.</p>"
        + _more_goals(data)
        + filters("goals-table", len(shown), statuses=STATUS_FILTERS, categories=categories)
        + grid("goals-table", "goals", GOAL_COLUMNS, rows)
        + "</section>"
    )


def trajectories_section(data: RunData, budget: int) -> tuple[str, set[str]]:
    """Collapsed trajectories within `budget` bytes: broken goals first, then by index.

    Returns the section and the result ids it holds (the goal grid links only to those).
    """
    with_traces = [g for g in data.goals if g.result_id in data.traces]
    if not with_traces:
        return "", set()
    big = len(with_traces) > 500
    per_goal = 40 if big else MAX_EVENTS_PER_GOAL
    limit = 300 if big else 2000
    chosen: list[tuple[int, str]] = []
    used = 0
    for goal in sorted(with_traces, key=lambda g: (not g.broken, g.index)):
        traces = data.traces[goal.result_id]
        runs = len({r.variant for r in goal.rows})
        by_attempt = {r.attempt_id: r for r in goal.rows if r.attempt_id is not None}
        piece = (
            f'<details class="traj" id="traj-{goal.index}"><summary>#{goal.index} '
            f"{e(goal.goal_id, 120)} · "
            f'<span class="st st-{STATUS_CLASS[goal.status.value]}">{e(goal.label)}</span> · '
            f"{runs} run(s), {len(traces)} events — {e(goal.goal, 160)}</summary>"
            f"{render_trajectory(traces, limit=limit, max_events=per_goal, rows=by_attempt)}"
            "</details>"
        )
        size = len(piece.encode("utf-8"))
        if used + size > budget:
            break
        used += size
        chosen.append((goal.index, piece))
    left = len(with_traces) - len(chosen)
    parts = [
        '<section id="trajectories"><h2>Trajectories</h2>',
        '<p class="note">What the optimizer did, run by run: each run as the conversation it '
        "was (the attacker's reasoning where recorded, every turn, the target's answer and the "
        "judge's score). Collapsed: open a goal to read it.</p>"
        '<p class="legend"><span><i class="li"></i>injected</span><span><i class="lt"></i>'
        'target</span><span><i class="lj"></i>judge</span></p>',
    ]
    if left:
        parts.append(f'<p class="note">{left} goals\' trajectories (held goals first) are left out '
                     "to keep this file small; the store keeps every trace.</p>")
    parts += [piece for _, piece in sorted(chosen)]
    parts.append("</section>")
    kept = {g.result_id for g in with_traces if g.index in {i for i, _ in chosen}}
    return "".join(parts), kept


def attempt_html(row: PipelineRow, limit: int) -> str:
    """One attempt whole: its label, outcome and verdicts, then the prompt as the conversation
    it was (every turn with its role), the answer and the decoded answer the judges read."""
    score = "" if row.score is None else f" · score {float(row.score):.2f}"
    outcome = ("pending" if row.pending else "target error" if row.error
               else "success" if row.success else "no success" if row.success is False
               else "not judged")
    verdicts = "".join(
        f"<span>{e(name, 40)}: "
        + ('<span class="err">error</span>' if cell.error or cell.success is None
           else f'<span class="{"yes" if cell.success else "no"}">'
                f'{"yes" if cell.success else "no"}</span>')
        + ("" if cell.score is None else f" ({float(cell.score):.2f})") + "</span> "
        for name, cell in sorted(row.judges.items()))
    messages = list(row.conversation) or [{"role": "user", "content": row.prompt}]
    body = render_conversation(messages, limit=limit, response=row.response, decoded=row.decoded)
    body += tool_calls_html(row, limit)
    if row.error:
        body += f'<div class="clip err">error: {e(row.error, limit)}</div>'
    return (f'<li><div class="ev-head"><b>{e(row.label or "-", 160)}</b> · {outcome}{score}'
            f' · {verdicts}</div>{body}</li>')


def _left_out(goal: GoalView) -> str:
    """The line that says how many of a goal's attempts the report leaves out (big runs)."""
    if goal.left_out <= 0:
        return ""
    return (f'<li class="note">{goal.left_out} more attempt(s) of this goal are in the export '
            "(<code>siegeflow export RUN</code>) and in <code>siegeflow runs show RUN --goal "
            f"{e(goal.goal_id, 120)}</code>; the {len(goal.rows)} best are shown.</li>")


def attempts_section(data: RunData, budget: int, limit: int) -> str:
    """Every attempt of each goal (broken goals first, then by index) within `budget` bytes:
    the goal grid shows one prompt per goal, this shows them all, conversations whole."""
    goals = [g for g in data.goals if g.rows]
    if not goals or budget <= 0:
        return ""
    chosen: list[tuple[int, str]] = []
    used = 0
    for goal in sorted(goals, key=lambda g: (not g.broken, g.index)):
        items = "".join(attempt_html(r, limit) for r in goal.rows) + _left_out(goal)
        piece = (
            f'<details class="attempts" id="attempts-{goal.index}"><summary>#{goal.index} '
            f"{e(goal.goal_id, 120)} · "
            f'<span class="st st-{STATUS_CLASS[goal.status.value]}">{e(goal.label)}</span> · '
            f"{goal.attempts} attempt(s) — {e(goal.goal, 160)}</summary>"
            f'<ol class="events">{items}</ol></details>'
        )
        size = len(piece.encode("utf-8"))
        if used + size > budget:
            break
        used += size
        chosen.append((goal.index, piece))
    if not chosen:
        return ""
    left = len(goals) - len(chosen)
    note = (f'<p class="note">{left} goals (held goals first) are left out to keep this file '
            "small; <code>siegeflow runs show RUN --goal ID</code> and "
            "<code>siegeflow export</code> have every attempt.</p>" if left else "")
    return ('<section id="attempts"><h2>Every attempt</h2><p class="note">Each goal\'s '
            "attempts in full: the prompt as the conversation it was, the target's answer, the "
            "decoded answer the judges read when the technique encoded it, and each judge's "
            "verdict. Collapsed: open a goal to read it.</p>" + note
            + "".join(piece for _, piece in sorted(chosen)) + "</section>")


def render_report(data: RunData, *, max_chars: int | None = None, with_csp: bool = True) -> str:
    """The whole report as one HTML string (kept under `PAGE_BUDGET` bytes by design)."""
    limit = cell_limit(sum(1 for g in data.goals if g.detailed), max_chars)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    top = header(data) + "<main>" + headline_section(data) + charts_section(data)
    top += bon_section(data)
    top += judges_section(data)
    top += review_html(data.review)
    # The grid is sized by `cell_limit`; trajectories get what is left of the page budget.
    goals_html = goals_section(data, limit, set(data.traces))
    left = PAGE_BUDGET - len(top.encode("utf-8")) - len(goals_html.encode("utf-8"))
    trajectories, kept = trajectories_section(data, max(0, left))
    if kept != set(data.traces):
        goals_html = goals_section(data, limit, kept)
    left -= len(trajectories.encode("utf-8"))
    attempts = attempts_section(data, left, min(limit, 2000))
    body = (
        top + goals_html + trajectories + attempts + "</main>"
        + f"<footer>Generated by siegeflow on {generated}. Texts from goal files, attackers and "
        "targets are shown as plain text; this file loads nothing from the network.</footer>"
    )
    return page(f"siegeflow report · {data.run_id}", body, with_csp=with_csp)
