"""The flow's artifacts as a person sees them: the real Prefect UI, served locally, in Chromium.

The session's Prefect server serves its UI; the flows of `conftest.recorded` published their
progress, goal table, markdown summary and report link there. Each artifact page is opened,
waited on until the UI has rendered it, checked for what a reader needs (and for hostile text
shown as text, neither run nor double-escaped), and screenshotted. Screenshots go to
`$SIEGEFLOW_UI_SCREENSHOTS` when set (to attach to a review), else to the test's tmp folder.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tasks.context import artifact_key
from tests.reports.chromium import Browser, Page
from tests.reports.conftest import Recorded
from tracking import get_backend

pytestmark = pytest.mark.e2e


def _api(api_url: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"{api_url}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())


def _artifacts(api_url: str, flow_run_id: str) -> dict[str, dict[str, Any]]:
    found = _api(api_url, "/artifacts/filter",
                 {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 50})
    return {a["key"] or a["id"]: a for a in found}


def _wait_text(page: Page, needle: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = page.evaluate("document.body ? document.body.innerText : ''") or ""
        if needle in text:
            page.settle(0.5)  # let the last images and fonts settle before the screenshot
            return page.evaluate("document.body.innerText")
        page.settle(0.25)
    raise AssertionError(f"{needle!r} never appeared; page text: {text[:500]!r}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("SIEGEFLOW_UI_SCREENSHOTS") or tmp_path_factory.mktemp("ui"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_artifacts_read_well_in_the_prefect_ui(
    recorded: Recorded, prefect_api_url: str, chromium: Browser, shots: Path, report_dir: Path
) -> None:
    run = get_backend(recorded.db_url).get_run(recorded.before)
    assert run is not None and run.prefect_flow_run_id
    artifacts = _artifacts(prefect_api_url, run.prefect_flow_run_id)
    keys = {what: artifact_key(run.id, what) for what in ("summary", "goals", "report")}
    assert set(keys.values()) <= set(artifacts), sorted(artifacts)
    assert any(a["type"] == "progress" for a in artifacts.values())
    report_file = report_dir / f"{run.id}.html"
    assert report_file.is_file()
    assert artifacts[keys["report"]]["data"].endswith(f"({report_file.resolve().as_uri()})")
    ui = prefect_api_url.removesuffix("/api")
    page = chromium.new_page()

    page.navigate(f"{ui}/runs/flow-run/{run.prefect_flow_run_id}")
    _wait_text(page, "Artifacts")
    page.evaluate("""Array.from(document.querySelectorAll('button, [role=tab], a, li'))
      .filter(e => e.textContent.trim() === 'Artifacts').pop().click()""")
    text = _wait_text(page, keys["report"])
    page.screenshot(shots / "prefect-flow-run-artifacts.png")
    assert keys["summary"] in text and keys["goals"] in text
    assert "The self-contained HTML report" in text

    page.navigate(f"{ui}/artifacts/artifact/{artifacts[keys['report']]['id']}")
    text = _wait_text(page, "HTML report of run")
    page.screenshot(shots / "prefect-report-link-artifact.png")

    page.navigate(f"{ui}/artifacts/artifact/{artifacts[keys['summary']]['id']}")
    text = _wait_text(page, "ASR by category")
    page.screenshot(shots / "prefect-summary-artifact.png")
    assert "40.0%" in text and "Judge agreement" in text and report_file.name in text
    assert "\\" not in text and "&lt;" not in text  # markdown escapes do not show through

    page.navigate(f"{ui}/artifacts/artifact/{artifacts[keys['goals']]['id']}")
    text = _wait_text(page, "best prompt")
    page.screenshot(shots / "prefect-goals-table-artifact.png")
    assert "SUCCESSFUL_JAILBREAK" in text and "Sure, here is how" in text


#: Elements built from the payloads if any of them was rendered instead of shown as text.
_HOSTILE_ELEMENTS = """[...document.querySelectorAll('*')].filter(e =>
    e.tagName === 'IFRAME' || (e.tagName === 'IMG' && e.getAttribute('src') === 'x') ||
    [...e.attributes].some(a => a.name.startsWith('on') || a.value.includes('canary') ||
                               a.value.trim().toLowerCase().startsWith('javascript:'))
).map(e => e.outerHTML.slice(0, 120))"""


def test_hostile_text_is_inert_and_readable_in_the_prefect_ui(
    recorded: Recorded, prefect_api_url: str, chromium: Browser, shots: Path
) -> None:
    run = get_backend(recorded.db_url).get_run(recorded.hostile)
    assert run is not None
    artifacts = _artifacts(prefect_api_url, run.prefect_flow_run_id)
    ui = prefect_api_url.removesuffix("/api")
    page = chromium.new_page()
    page.navigate(f"{ui}/artifacts/artifact/{artifacts[artifact_key(run.id, 'summary')]['id']}")
    text = _wait_text(page, "ASR by category")
    page.screenshot(shots / "prefect-hostile-summary-artifact.png")
    assert "<script>" in text and "&lt;script" not in text  # shown as text, once escaped
    assert "&#x27;" not in text and "&amp;" not in text and "\\" not in text
    assert page.evaluate("document.querySelectorAll('a[href*=canary]').length") == 0  # no links
    assert page.evaluate(_HOSTILE_ELEMENTS) == []
    assert page.evaluate("document.title") != "PWNED"
    page.navigate(f"{ui}/artifacts/artifact/{artifacts[artifact_key(run.id, 'goals')]['id']}")
    text = _wait_text(page, "best prompt")
    page.screenshot(shots / "prefect-hostile-goals-artifact.png")
    assert "onerror" in text and page.evaluate("document.title") != "PWNED"
    # Prefect renders table cells as Markdown with inline HTML: nothing hostile may become an
    # element, a link or an attribute (a rendered <img> would fetch, an <a> would navigate).
    assert page.evaluate(_HOSTILE_ELEMENTS) == [], "hostile markup rendered in the goals table"
    assert page.of("Page.javascriptDialogOpening") == []
