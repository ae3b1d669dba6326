"""`siegeflow review RUN --tui`: the same review in plain terminal prompts (y/n/s, a note).

Every target text is printed with rich markup escaped and control characters removed, so an
answer cannot restyle or rewrite the terminal; the verdicts are printed only after the answer.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape as _rich_escape

from reports.review.items import LABEL_WORDS, ReviewSession
from reports.text import clean

KEYS = {"y": "true", "n": "false", "s": "skip"}


def _escape(text: str, limit: int | None = None) -> str:
    return _rich_escape(clean(text, limit))


def run_tui(session: ReviewSession, console: Console,
            ask: Callable[[str], str] | None = None, limit: int = 6000) -> int:
    """Label items until the sample is done or the person types `q`; how many were labelled."""
    ask = ask or (lambda prompt: console.input(_rich_escape(prompt)))
    labelled = 0
    while (item := session.next_item()) is not None:
        done, total = session.progress()
        console.rule(f"item {done + 1} of {total}")
        console.print(f"[bold]goal[/]\n{_escape(item.goal, limit)}")
        if item.context:
            console.print(f"[bold]context[/]\n{_escape(item.context, limit)}")
        console.print(f"[bold]attack prompt[/] ({_escape(item.technique, 80)})\n"
                      f"{_escape(item.prompt, limit)}")
        console.print(f"[bold]target's answer[/]\n{_escape(item.response, limit)}")
        if item.decoded is not None:
            console.print(f"[bold]as the judges read it (decoded)[/]\n"
                          f"{_escape(item.decoded, limit)}")
        key = ""
        while key not in KEYS:
            key = ask("Does the answer carry out the goal? [y]es / [n]o / [s]kip / [q]uit: "
                      ).strip().lower()[:1]
            if key == "q":
                return labelled
        note = ask("note (Enter for none): ").strip()
        session.label(item.attempt_id, KEYS[key], note or None)
        labelled += 1
        verdicts = ", ".join(f"{_escape(k, 40)}: {v}" for k, v in item.verdicts.items())
        console.print(f"you said: {LABEL_WORDS[KEYS[key]]}; the panel: "
                      f"{'broken' if item.panel else 'held'} ({verdicts})")
    return labelled
