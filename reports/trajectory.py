"""A goal's recorded traces as a readable, collapsed trajectory (optimizer runs).

An optimizer run's event (it names its `attempt_id`, or holds an `outcome`) reads as the
conversation it was: every turn with its role, the answer and its score, the decoded answer,
the attacker's reasoning where an optimizer recorded it; the raw event stays one click away.
Other traces are rendered generically — sequence, type, name and every content field — because the
optimizers decide what an event holds. Two conventions are read when present: a run number
(`run_index`/`run` in the content, or `run-<i>` in the step name) groups events run by run, and
well-known keys mark an event as an injection, a target action or a judge score. Every value
is escaped and clipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from reports.text import clip, html_escape

_RUN_IN_NAME = re.compile(r"\brun[-_ ]?(\d+)\b", re.IGNORECASE)
_KINDS = (
    ("inject", ("inject", "controllable", "where", "payload", "attack")),
    ("judge", ("score", "success", "evaluation", "verdict", "feedback", "judge")),
    ("target", ("response", "output", "completion", "tool", "observable", "value", "target")),
)
KIND_LABEL = {"inject": "injected", "target": "target", "judge": "judge"}


def run_number(step_name: str, content: Any) -> int | None:
    if isinstance(content, Mapping):
        for key in ("run_index", "run"):
            value = content.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    match = _RUN_IN_NAME.search(step_name or "")
    return int(match.group(1)) if match else None


def event_kind(step_type: str, step_name: str, content: Any) -> str | None:
    """Which of injected / target / judge an event is about (first match wins), if any."""
    words = f"{step_type} {step_name}".lower()
    keys = " ".join(str(k).lower() for k in content) if isinstance(content, Mapping) else ""
    for kind, needles in _KINDS:
        if any(n in words for n in needles):
            return kind
    for kind, needles in _KINDS:
        if any(n in keys for n in needles):
            return kind
    return None


def _entry(item: Mapping[str, Any], limit: int, depth: int) -> str:
    if item.get("injected") is True:
        kind: str | None = "inject"
    else:  # a not-injected call point is what the target did
        kind = event_kind("", str(item.get("kind") or ""),
                          {k: v for k, v in item.items() if k != "injected"})
    cls = f' class="{kind}"' if kind else ""
    rows = "".join(
        f"<dt>{html_escape(str(key), 80)}</dt><dd>{render_value(value, limit, depth + 1)}</dd>"
        for key, value in item.items()
    )
    return f'<li{cls}><dl class="kv">{rows}</dl></li>'


def render_value(value: Any, limit: int, depth: int = 0) -> str:
    """A trace value: scalars inline, records and lists of records (an optimizer's trajectory
    entries) as nested lists a person can read, anything else as clipped JSON text."""
    if value is None or isinstance(value, bool | int | float):
        return f"<code>{html_escape(json.dumps(value))}</code>"
    if depth < 3 and isinstance(value, Mapping) and 0 < len(value) <= 30:
        return "".join(["<dl class=\"kv\">", *(
            f"<dt>{html_escape(str(k), 80)}</dt><dd>{render_value(v, limit, depth + 1)}</dd>"
            for k, v in value.items()), "</dl>"])
    if (depth < 3 and isinstance(value, list) and 0 < len(value) <= 200
            and all(isinstance(item, Mapping) for item in value)):
        return f'<ol class="events">{"".join(_entry(i, limit, depth) for i in value)}</ol>'
    text = value if isinstance(value, str) else json.dumps(
        value, indent=1, ensure_ascii=False, default=str
    )
    shown, cut = clip(text, limit)
    more = f'<span class="cut"> … {cut} more characters</span>' if cut else ""
    return f"<pre>{html_escape(shown)}</pre>{more}"


def _run_conversation(content: Mapping[str, Any], row: Any | None, limit: int) -> str | None:
    """An optimizer run's event as the conversation it was (None: not a run event): the
    attempt's stored messages when the row is known, else the outcome's prompt; the answer,
    its score and the attacker's reasoning; the rest of the event stays one click away."""
    outcome = content.get("outcome")
    if row is None and not isinstance(outcome, Mapping):
        return None
    outcome = outcome if isinstance(outcome, Mapping) else {}
    score = content.get("score")
    score = float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None
    if row is not None and row.conversation:
        messages: list[Mapping[str, Any]] = list(row.conversation)
    else:
        prompt = outcome.get("prompt")
        messages = [{"role": "user", "content": prompt if isinstance(prompt, str)
                     else json.dumps(prompt, ensure_ascii=False, default=str)}] if prompt else []
    response = row.response if row is not None else outcome.get("response")
    if response is not None and not isinstance(response, str):
        response = json.dumps(response, ensure_ascii=False, default=str)
    error = (row.error if row is not None else None) or outcome.get("error")
    conversation = render_conversation(
        messages, limit=limit, response=response, score=score,
        decoded=row.decoded if row is not None else None, reasoning=reasoning_of(content))
    if error:
        conversation += f'<div class="clip err">error: {html_escape(str(error), limit)}</div>'
    rest = {k: v for k, v in content.items() if k not in ("outcome",)}
    raw = "".join(f"<dt>{html_escape(str(k), 80)}</dt><dd>{render_value(v, limit)}</dd>"
                  for k, v in rest.items())
    return conversation + (f'<details><summary class="note">recorded events</summary>'
                           f'<dl class="kv">{raw}</dl></details>' if raw else "")


def render_event(trace: Any, limit: int, rows: Mapping[int, Any] | None = None) -> str:
    content = trace.content
    kind = event_kind(trace.step_type, trace.step_name, content)
    cls = f' class="{kind}"' if kind else ""
    tag = f" · {KIND_LABEL[kind]}" if kind else ""
    head = (
        f'<div class="ev-head">#{int(trace.sequence)} <b>{html_escape(trace.step_type, 64)}</b> '
        f"{html_escape(trace.step_name, 200)}{tag}</div>"
    )
    if isinstance(content, Mapping):
        attempt = content.get("attempt_id")
        row = (rows or {}).get(attempt) if isinstance(attempt, int) else None
        conversation = _run_conversation(content, row, limit)
        if conversation is not None:
            return f"<li{cls}>{head}{conversation}</li>"
        items = "".join(
            f"<dt>{html_escape(str(key), 80)}</dt><dd>{render_value(value, limit)}</dd>"
            for key, value in content.items()
        )
        body = f'<dl class="kv">{items}</dl>' if items else ""
    elif content is None:
        body = ""
    else:
        body = render_value(content, limit)
    return f"<li{cls}>{head}{body}</li>"


def _outcome(events: list[Any]) -> str:
    """` · score 0.7 · success` from the run's last event that carries a score or success."""
    for trace in reversed(events):
        content = trace.content
        if isinstance(content, Mapping) and ("score" in content or "success" in content):
            parts = []
            score = content.get("score")
            if isinstance(score, int | float) and not isinstance(score, bool):
                parts.append(f"score {float(score):.2f}")
            if isinstance(content.get("success"), bool):
                parts.append("success" if content["success"] else "no success")
            return "".join(f" · {p}" for p in parts)
    return ""


def render_trajectory(traces: Iterable[Any], *, limit: int, max_events: int,
                      rows: Mapping[int, Any] | None = None) -> str:
    """The events of one goal, grouped by optimizer run when runs are recognisable; a run's
    event reads as its conversation (`rows`: the goal's pipeline rows by attempt id)."""
    ordered = sorted(traces, key=lambda t: t.sequence)
    dropped = max(0, len(ordered) - max_events)
    ordered = ordered[:max_events]
    groups: list[tuple[int | None, list[Any]]] = []
    for trace in ordered:
        number = run_number(trace.step_name, trace.content)
        if number is None and groups:
            number = groups[-1][0]  # an event without a run number belongs to the current run
        if not groups or groups[-1][0] != number:
            groups.append((number, []))
        groups[-1][1].append(trace)
    parts = []
    for number, events in groups:
        title = f"<h3>Run {number}{_outcome(events)}</h3>" if number is not None else ""
        items = "".join(render_event(t, limit, rows) for t in events)
        parts.append(f'<div class="run">{title}<ol class="events">{items}</ol></div>')
    if dropped:
        parts.append(f'<p class="note">{dropped} later events not shown (siegeflow export has '
                     "every attempt; the store has every trace).</p>")
    return "".join(parts)


#: Keys under which optimizers record the attacker's own reasoning (PAIR's `improvement`).
_REASONING_KEYS = ("improvement", "reasoning", "rationale", "attacker_reasoning", "thought")
_ROLE_CLASS = {"user": "user", "assistant": "assistant", "system": "system", "tool": "tool"}


def reasoning_of(value: Any, depth: int = 0) -> list[str]:
    """The attacker's reasoning/improvement texts recorded anywhere in a trace's content."""
    found: list[str] = []
    if depth > 6:
        return found
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() in _REASONING_KEYS and isinstance(item, str) and item.strip():
                found.append(item)
            else:
                found += reasoning_of(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            found += reasoning_of(item, depth + 1)
    return found


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    calls = message.get("tool_calls")
    return json.dumps(calls, ensure_ascii=False, default=str) if calls else ""


def _turn(role: str, text: str, limit: int, extra: str = "", cls: str | None = None) -> str:
    shown, cut = clip(text, limit)
    more = f'<span class="cut"> … {cut} more characters</span>' if cut else ""
    css = cls or _ROLE_CLASS.get(role, "other")
    return (f'<li class="{css}"><div class="role">{html_escape(role, 40)}{extra}</div>'
            f'<div class="clip">{html_escape(shown)}{more}</div></li>')


def render_conversation(messages: Iterable[Mapping[str, Any]], *, limit: int,
                        response: str | None = None, decoded: str | None = None,
                        score: float | None = None, reasoning: Iterable[str] = ()) -> str:
    """A conversation as turns with their roles (every text escaped and clipped): the stored
    prompt's messages, then the target's final answer with its score, the decoded answer the
    judges read when it differs, and the attacker's reasoning where it was recorded."""
    turns = [_turn("attacker's reasoning", text, limit, cls="attacker") for text in reasoning]
    turns += [_turn(str(m.get("role") or "?"), _message_text(m), limit) for m in messages]
    if response is not None:
        tag = "" if score is None else f" · score {float(score):.2f}"
        turns.append(_turn("assistant", response, limit, extra=html_escape(tag)))
    if decoded is not None and decoded != response:
        turns.append(_turn("decoded answer (what the judges read)", decoded, limit,
                           cls="assistant decoded"))
    return f'<ol class="conv">{"".join(turns)}</ol>'
