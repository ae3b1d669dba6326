"""Hostile goal files and target answers, rendered and opened in a real headless Chromium.

Evidence that nothing ran: a canary HTTP server every payload tries to reach gets no request,
the title is unchanged, no dialog opened, no exception was thrown, the DOM holds no element or
attribute a payload would have created, and the payloads are visible as text. Each page is
checked with the Content-Security-Policy and without it (escaping alone must hold), and after
using the page's sorting, filtering and expanding. A control page with one payload left
unescaped shows the harness does detect execution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reports.compare import compare_runs
from reports.compare_html import render_compare
from reports.html import render_report
from reports.load import load_run
from tests.reports.chromium import Browser, Page
from tests.reports.conftest import PAYLOADS, Recorded, canary_url
from tests.support.openai_server import OpenAIServer
from tracking import get_backend

pytestmark = pytest.mark.e2e

# What a payload would have created had it been parsed as markup (our page has none of these).
FOREIGN = ("img, iframe, object, embed, svg:not(.chart), body meta, body base, body link, "
           "form, input:not([data-filter]), a[href]:not([href^='#'])")
DOM_CHECK = """(() => {
  const all = Array.from(document.querySelectorAll('*'));
  return {
    title: document.title,
    scripts: document.scripts.length,
    styles: document.querySelectorAll('style').length,
    foreign: Array.from(document.querySelectorAll(%r)).map(e => e.outerHTML.slice(0, 120)),
    handlers: all.filter(e => Array.from(e.attributes).some(a => a.name.startsWith('on')))
                 .map(e => e.tagName),
    text: document.body.textContent,
  };
})()""" % FOREIGN


def _open(chromium: Browser, html: str, path: Path) -> Page:
    path.write_text(html, encoding="utf-8")
    page = chromium.new_page()
    page.navigate(path.resolve().as_uri())
    page.settle(1.0)  # image errors, timers, refreshes
    return page


def _assert_inert(page: Page, canary: OpenAIServer, hits_before: int, title: str) -> dict[str, Any]:
    dom = page.evaluate(DOM_CHECK)
    assert canary.stats()["requests"] == hits_before, "a payload reached the canary server"
    assert dom["title"].startswith(title), dom["title"]
    assert dom["scripts"] == 1 and dom["styles"] == 1
    assert dom["foreign"] == [] and dom["handlers"] == []
    assert page.of("Page.javascriptDialogOpening") == []
    assert page.of("Runtime.exceptionThrown") == []
    assert page.of("Page.frameNavigated")[1:] == [], "the page navigated away"
    return dom


def _hostile_html(recorded: Recorded, *, with_csp: bool) -> str:
    data = load_run(get_backend(recorded.db_url), recorded.hostile)
    assert data.goals and all(g.broken for g in data.goals)
    return render_report(data, with_csp=with_csp)


@pytest.mark.parametrize("with_csp", [True, False], ids=["csp", "escaping-only"])
def test_hostile_report_executes_nothing(
    recorded: Recorded, chromium: Browser, canary_server: OpenAIServer, tmp_path: Path,
    with_csp: bool,
) -> None:
    hits = canary_server.stats()["requests"]
    page = _open(chromium, _hostile_html(recorded, with_csp=with_csp), tmp_path / "r.html")
    dom = _assert_inert(page, canary_server, hits, "siegeflow report")
    canary = canary_url(canary_server)
    for payload in PAYLOADS:  # shown as text, whole (in the goal cells)
        assert payload.format(canary=canary)[:60] in dom["text"]
    assert "\u202e" not in dom["text"] and "\x00" not in dom["text"]  # cleaned, not rendered
    assert "zalgo" in dom["text"] and "\U0001f4a3" in dom["text"]
    if with_csp:  # our own script and style are allowed by their hashes: no violation at all
        assert not [e for e in page.of("Log.entryAdded")
                    if "Content Security Policy" in e["params"]["entry"].get("text", "")]


def test_using_the_page_creates_no_markup_from_data(
    recorded: Recorded, chromium: Browser, canary_server: OpenAIServer, tmp_path: Path
) -> None:
    hits = canary_server.stats()["requests"]
    page = _open(chromium, _hostile_html(recorded, with_csp=False), tmp_path / "r.html")
    order = page.evaluate("""(() => {
      const ids = () => Array.from(document.querySelectorAll('#goals-table .gb .gr'))
                        .map(r => r.children[0].textContent);
      const heads = document.querySelectorAll('#goals-table [role=columnheader] button');
      heads[0].click(); const asc = ids(); heads[0].click(); const desc = ids();
      heads[2].click();  // category: text sort over hostile strings
      document.querySelectorAll('.clip').forEach(c => c.click());
      const q = document.querySelector('[data-filter=text]');
      q.value = '<script>'; q.dispatchEvent(new Event('input'));
      return [asc, desc];
    })()""")
    assert order[0] == sorted(order[0], key=int) and order[1] == order[0][::-1]
    page.settle(0.6)  # the filter is debounced only for big tables; let it and handlers run
    shown = page.evaluate("document.querySelector('.filters output').textContent")
    assert shown == f"{len(PAYLOADS)} of {len(PAYLOADS)} shown"  # every answer quotes them all
    page.evaluate("""(() => { const q = document.querySelector('[data-filter=text]');
      q.value = 'no such text'; q.dispatchEvent(new Event('input')); })()""")
    assert page.evaluate("document.querySelector('.filters output').textContent") == (
        f"0 of {len(PAYLOADS)} shown")
    page.evaluate("location.hash = '#goals'")
    _assert_inert(page, canary_server, hits, "siegeflow report")


def test_hostile_compare_page_executes_nothing(
    recorded: Recorded, chromium: Browser, canary_server: OpenAIServer, tmp_path: Path
) -> None:
    backend = get_backend(recorded.db_url)
    hostile = load_run(backend, recorded.hostile)
    cmp = compare_runs(load_run(backend, recorded.before), hostile)
    assert cmp.matched_by == "goal text"  # no shared ids: paired by text, none match
    for with_csp in (True, False):
        hits = canary_server.stats()["requests"]
        page = _open(chromium, render_compare(compare_runs(hostile, hostile), with_csp=with_csp),
                     tmp_path / f"c{with_csp}.html")
        _assert_inert(page, canary_server, hits, "siegeflow compare")


def test_optimizer_trajectories_are_collapsed_and_inert(
    recorded: Recorded, chromium: Browser, canary_server: OpenAIServer, tmp_path: Path
) -> None:
    """An optimize_flow run: each goal's trajectory is a closed <details>; opened, it shows the
    run's events and the hostile answer as text, and still nothing runs."""
    data = load_run(get_backend(recorded.db_url), recorded.optimized)
    assert data.kind == "optimize" and len(data.traces) == 3
    hits = canary_server.stats()["requests"]
    page = _open(chromium, render_report(data), tmp_path / "opt.html")
    state = page.evaluate("""Array.from(document.querySelectorAll('details.traj'))
                               .map(d => [d.id, d.open])""")
    assert [open_ for _, open_ in state] == [False] * 3
    page.evaluate(f"location.hash = '#{state[0][0]}'")  # the grid's "trajectory" link
    page.settle(0.3)
    opened = page.evaluate(f"document.getElementById('{state[0][0]}').open")
    text = page.evaluate(f"document.getElementById('{state[0][0]}').innerText")
    assert opened and "Run 0" in text and "OPTIMIZER_RUN" in text and "<script>" in text
    _assert_inert(page, canary_server, hits, "siegeflow report")


def test_control_an_unescaped_payload_is_detected(
    chromium: Browser, canary_server: OpenAIServer, tmp_path: Path
) -> None:
    """The harness is not blind: the same checks fail on a page that does not escape."""
    hits = canary_server.stats()["requests"]
    payload = PAYLOADS[1].format(canary=canary_url(canary_server))
    page = _open(chromium, f"<!DOCTYPE html><title>control</title><p>{payload}</p>",
                 tmp_path / "control.html")
    assert canary_server.stats()["requests"] > hits
    assert page.evaluate("document.title") == "PWNED"
