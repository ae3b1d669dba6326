"""The review page as a person uses it, in headless Chromium, keyboard only: `siegeflow review`
prints the page's address; 30 labels typed there land in the store, a reload resumes where the
person stopped, and `runs show` then gives the panel's agreement and the prediction-powered ASR;
`review export` round-trips through `judges validate`. And target text is inert on the page."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from reports.load import load_run
from reports.review.items import ReviewSession, review_figures
from reports.review.sample import draw_sample
from reports.review.server import ReviewServer
from tests.reports.chromium import Page, browser
from tests.reports.synthetic import record_synthetic_run
from tracking import SQLBackend
from tracking.models import AttemptRecord, ResultRecord

pytestmark = pytest.mark.e2e
runner = CliRunner()
KEYS = {"y": ("KeyY", 89, "y"), "n": ("KeyN", 78, "n"), "s": ("KeyS", 83, "s"),
        "e": ("KeyE", 69, "e"), "Enter": ("Enter", 13, "\r"), "Escape": ("Escape", 27, "")}


def press(page: Page, key: str) -> None:
    """One key as a keyboard sends it (keydown with its text, keyup)."""
    code, vk, text = KEYS[key]
    down: dict[str, Any] = {"type": "keyDown", "key": key, "code": code,
                            "windowsVirtualKeyCode": vk}
    if text:
        down["text"] = text
    page.send("Input.dispatchKeyEvent", down)
    page.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code,
                                         "windowsVirtualKeyCode": vk})


def wait_for(page: Page, expression: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(expression)
        if value:
            return value
        page.settle(0.05)
    raise AssertionError(f"timed out waiting for {expression}")


def state(page: Page) -> dict[str, Any]:
    return page.evaluate("""(() => {
      const item = document.getElementById('item');
      const reveal = document.getElementById('reveal');
      return {attempt: item ? Number(item.dataset.attempt) : null,
              progress: document.getElementById('progress').textContent,
              state: document.body.dataset.state || null,
              revealShown: reveal ? getComputedStyle(reveal).display !== 'none' : null,
              verdicts: Array.from(document.querySelectorAll('#verdicts li'))
                             .map(li => li.textContent),
              text: document.body.textContent};
    })()""")


def next_page(page: Page) -> None:
    """Enter after the reveal: the page reloads with the next item."""
    for event in page.events:
        if event["method"] == "Page.loadEventFired":
            event["_seen"] = True
    press(page, "Enter")
    page.wait_event("Page.loadEventFired")


def answer(page: Page, key: str, note: str | None = None) -> dict[str, Any]:
    before = state(page)
    assert before["state"] == "asking" and not before["revealShown"] and not before["verdicts"]
    if note is not None:
        press(page, "e")
        page.send("Input.insertText", {"text": note})
        press(page, "Escape")
    press(page, key)
    wait_for(page, "document.body.dataset.state === 'answered'")
    after = state(page)
    assert after["revealShown"] and any(v.startswith("panel: ") for v in after["verdicts"])
    return before


def _start_cli(db: str, run_id: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "review", run_id, "--db", db, "--sample", "40",
         "--seed", "7", "--reviewer", "tester"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("Review page"):
            return proc, line.rsplit(" ", 1)[1].strip()
    proc.kill()
    raise AssertionError(f"no URL printed: {proc.stderr.read() if proc.stderr else ''}")


def test_thirty_labels_by_keyboard_resume_and_reach_runs_show(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    backend = SQLBackend(db)
    run_id = record_synthetic_run(backend, 90, seed=12)
    proc, url = _start_cli(db, run_id)
    try:
        assert url.startswith("http://127.0.0.1:") and len(url.rsplit("/", 2)[1]) >= 24
        draws = {d.attempt_id: d for d in backend.list_review_draws(run_id)}
        assert len(draws) == 40 and draws[next(iter(draws))].seed == 7
        pressed: dict[int, str] = {}
        with browser() as chromium:
            page = chromium.new_page()
            page.navigate(url)
            for k in range(30):
                if k == 10:  # reload: the page resumes at the 11th item
                    page.navigate(url)
                    resumed = state(page)
                    assert resumed["progress"].startswith("item 11 of 40 (10 answered)")
                    assert resumed["attempt"] not in pressed
                shown = state(page)
                attempt = shown["attempt"]
                broken = draws[attempt].stratum == "broken"
                # the person disagrees with the panel on every fifth item, with a note
                disagree = k % 5 == 4
                key = "y" if broken != disagree else "n"
                answer(page, key, note="answer is <b>not</b> what it seems" if disagree else None)
                pressed[attempt] = key
                next_page(page)
            assert state(page)["progress"].startswith("item 31 of 40 (30 answered)")
            assert page.of("Runtime.exceptionThrown") == []
    finally:
        proc.send_signal(signal.SIGINT)
        out, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors
    final = " ".join(out.split())
    assert "prediction-powered ASR" in final and "30 of 40 sampled goals labelled" in final
    labels = {lab.attempt_id: lab for lab in backend.list_review_labels(run_id)}
    assert {k: ("y" if v.label == "true" else "n") for k, v in labels.items()} == pressed
    assert {lab.reviewer for lab in labels.values()} == {"tester"}
    assert sum(1 for lab in labels.values() if lab.note) == 6
    figures = review_figures(backend, load_run(backend, run_id, with_traces=False))
    assert figures is not None and figures.ppi is not None and figures.agreement is not None
    assert figures.agreement.agree == 24 and figures.labelled == 30
    shown = runner.invoke(app, ["runs", "show", run_id, "--db", db])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert f"prediction-powered ASR {figures.ppi.asr.text()}" in text
    assert "panel vs reviewer on this run: accuracy" in text and "κ" in text
    print(f"\nreview e2e: {figures.ppi.asr.text()}; judge {figures.ppi.judge_rate:.1%}; "
          f"accuracy {figures.agreement.accuracy.text()}")
    out_file = tmp_path / "labels.jsonl"
    exported = runner.invoke(app, ["review", "export", run_id, "-o", str(out_file), "--db", db])
    assert exported.exit_code == 0, exported.output
    validated = runner.invoke(app, ["judges", "validate", "--labels", str(out_file), "--judge",
                                    "refusal", "--no-store", "--json", str(tmp_path / "v.json")])
    assert validated.exit_code == 0, validated.output
    assert len(json.loads((tmp_path / "v.json").read_text())["items"]) == 30
    backend.close()


PAYLOADS = [
    "<script>window.__pwned=1;document.title='PWNED'</script>",
    "<img src=x onerror=\"window.__pwned=2;document.title='PWNED'\">",
    "<a href=\"javascript:window.__pwned=3\">click me</a>",
    "</pre></div><script>window.__pwned=4</script>",
    "<svg onload=\"window.__pwned=5\"></svg><iframe srcdoc=\"<script>parent.__pwned=6</script>\">",
    "\"><meta http-equiv=\"refresh\" content=\"0;url=javascript:window.__pwned=7\">",
]
HOSTILE = " ".join(PAYLOADS)
HOSTILE_JUDGE = "<img src=x onerror=window.__pwned=8>"

INERT = """(() => ({
  pwned: window.__pwned === undefined ? null : window.__pwned,
  title: document.title,
  scripts: document.scripts.length,
  jsLinks: Array.from(document.querySelectorAll('a')).filter(a =>
      (a.getAttribute('href') || '').trim().toLowerCase().startsWith('javascript:')).length,
  foreign: document.querySelectorAll('img, iframe, svg, meta[http-equiv], object, embed').length,
  handlers: Array.from(document.querySelectorAll('*')).filter(e =>
      Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
  text: document.body.textContent,
}))()"""


def test_target_text_is_inert_on_the_review_page(tmp_path: Path) -> None:
    backend = SQLBackend(f"sqlite:///{tmp_path / 'hostile.db'}")
    run_id = record_synthetic_run(backend, 12, seed=4, judges=("refusal", HOSTILE_JUDGE))
    attempts = AttemptRecord.__table__  # type: ignore[attr-defined]
    results = ResultRecord.__table__  # type: ignore[attr-defined]
    with backend.engine.begin() as conn:
        conn.execute(sa.update(attempts).where(attempts.c.run_id == run_id)
                     .where(attempts.c.response.is_not(None)).values(response=HOSTILE))
        conn.execute(sa.update(attempts).where(attempts.c.run_id == run_id)
                     .values(prompt=[{"role": "user", "content": HOSTILE}]))
        conn.execute(sa.update(results).where(results.c.run_id == run_id)
                     .values(goal=HOSTILE))
    draw_sample(backend, load_run(backend, run_id, with_traces=False), 6, seed=1)
    server = ReviewServer(ReviewSession(backend, run_id, "tester")).start()
    try:
        with browser() as chromium:
            page = chromium.new_page()
            for _ in range(3):
                page.navigate(server.url)
                page.settle(0.5)  # image errors, refreshes, timers
                answer(page, "y")
                page.settle(0.3)
                dom = page.evaluate(INERT)
                assert dom["pwned"] is None and dom["title"] == "siegeflow review"
                assert dom["scripts"] == 1 and dom["jsLinks"] == 0
                assert dom["foreign"] == 0 and dom["handlers"] == 0
                for payload in PAYLOADS:  # shown as the text it is
                    assert payload in dom["text"]
                assert f"{HOSTILE_JUDGE}: yes" in dom["text"] or \
                    f"{HOSTILE_JUDGE}: no" in dom["text"]
                assert page.of("Page.javascriptDialogOpening") == []
                next_page(page)
            assert page.of("Runtime.exceptionThrown") == []
    finally:
        server.stop()
        backend.close()


def test_the_control_page_shows_the_harness_detects_a_payload(tmp_path: Path) -> None:
    """The same checks on a page with one payload left unescaped do see it run."""
    page_file = tmp_path / "control.html"
    page_file.write_text(f"<!doctype html><title>siegeflow review</title><body>{PAYLOADS[0]}"
                         "</body>", encoding="utf-8")
    with browser() as chromium:
        page: Page = chromium.new_page()
        page.navigate(page_file.as_uri())
        page.settle(0.3)
        assert page.evaluate(INERT)["pwned"] == 1
