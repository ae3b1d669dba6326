"""Drive Debian's headless Chromium over the DevTools protocol, for tests and the report bench.

Why CDP by hand: the checks need what a person's browser does — run the page's scripts, fire
`onerror`, follow policies — and evidence of anything that ran (dialogs, console calls, network
requests, DOM changes). Playwright would download its own browser; this is ~150 lines on the
`websockets` package Prefect already depends on. Chromium binds its debugging port to
127.0.0.1 and is started with the flags that keep it off the network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class ChromiumError(RuntimeError):
    """Chromium is missing, did not start, or a DevTools command failed."""


def chromium_binary() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise ChromiumError("chromium is not installed (make test installs Debian's chromium)")
    return path


@dataclass
class Page:
    """One tab, attached through the browser connection (flattened session)."""

    browser: Browser
    session: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["method"] == method and not event.get("_seen"):
                    event["_seen"] = True
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChromiumError(f"no {method} within {timeout}s")
            self.browser.pump(remaining)

    def navigate(self, url: str, timeout: float = 60) -> float:
        """Load `url`; seconds from the request until the load event has fired."""
        for event in self.events:
            if event["method"] == "Page.loadEventFired":
                event["_seen"] = True
        start = time.perf_counter()
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired", timeout)
        return time.perf_counter() - start

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        reply = self.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True,
        }, timeout=timeout)
        if "exceptionDetails" in reply:
            raise ChromiumError(f"evaluate failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def settle(self, seconds: float) -> None:
        """Let timers, image errors and handlers run; keep collecting events meanwhile."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.browser.pump(remaining)

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.evaluate("[document.documentElement.scrollWidth,"
                                 " document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": size[0], "height": min(size[1], 12000), "scale": 1})
        data = self.send("Page.captureScreenshot", params, timeout=60)["data"]
        import base64

        path.write_bytes(base64.b64decode(data))
        return path

    def of(self, method: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["method"] == method]


class Browser:
    """A headless Chromium process and one DevTools connection to it."""

    def __init__(self, width: int = 1400, height: int = 900) -> None:
        self._profile = tempfile.mkdtemp(prefix="siegeflow-chromium-")
        self._proc = subprocess.Popen(
            [chromium_binary(), *FLAGS, f"--user-data-dir={self._profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "HOME": self._profile},
        )
        self.width, self.height = width, height
        self._ws: ClientConnection = connect(self._endpoint(), max_size=None, open_timeout=30)
        self._ids = 0
        self._pages: dict[str, Page] = {}

    def _endpoint(self, timeout: float = 60) -> str:
        assert self._proc.stderr is not None
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline().decode("utf-8", "replace")
            if not line and self._proc.poll() is not None:
                break
            seen.append(line)
            if match := _LISTENING.search(line):
                return match.group(1)
        self.close()
        raise ChromiumError("chromium did not start: " + "".join(seen[-10:]))

    def pump(self, timeout: float) -> None:
        """Read one message (or time out) and route it."""
        try:
            raw = self._ws.recv(timeout=max(0.001, timeout))
        except TimeoutError:
            return
        self._route(json.loads(raw))

    def _route(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if "id" in message:
            return message
        page = self._pages.get(message.get("sessionId", ""))
        if page is not None:
            page.events.append(message)
            if message["method"] == "Page.javascriptDialogOpening":
                self._ws.send(json.dumps({"id": self._next(), "sessionId": page.session,
                                          "method": "Page.handleJavaScriptDialog",
                                          "params": {"accept": False}}))
        return None

    def _next(self) -> int:
        self._ids += 1
        return self._ids

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | None = None, timeout: float = 30) -> Any:
        ident = self._next()
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                raw = self._ws.recv(timeout=remaining)
            except TimeoutError:
                break
            reply = self._route(json.loads(raw))
            if reply is not None and reply["id"] == ident:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise ChromiumError(f"{method}: no reply within {timeout}s")

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        page = Page(browser=self, session=session)
        self._pages[session] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        return page

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)


@contextmanager
def browser(width: int = 1400, height: int = 900) -> Iterator[Browser]:
    b = Browser(width, height)
    try:
        yield b
    finally:
        b.close()


def open_timing(page: Page, url: str) -> dict[str, float]:
    """Seconds to open `url`: until the load event, and until the first frame after it painted."""
    start = time.perf_counter()
    load = page.navigate(url)
    page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
    painted = time.perf_counter() - start
    nav = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                        " const p = performance.getEntriesByName('first-contentful-paint')[0];"
                        " return [n.domContentLoadedEventEnd, n.loadEventEnd,"
                        " p ? p.startTime : -1]; })()")
    return {"load_s": load, "painted_s": painted, "dom_content_loaded_s": nav[0] / 1000,
            "load_event_end_s": nav[1] / 1000, "first_contentful_paint_s": nav[2] / 1000}
