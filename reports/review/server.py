"""The local review server: 127.0.0.1 only, a random port, a random token in every URL.

Why this shape: the page shows adversarial text and writes labels into the store, so nothing
but the person who started it should reach it. Only the loopback address is bound; every path
starts with a per-session token (compared in constant time; anything else is 403); the Host
header must name this server (a DNS-rebound name is refused) and a POST must come from this
origin with a JSON body (a cross-site form cannot send one without a preflight we never grant).
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reports.review.items import LABEL_WORDS, ReviewSession
from reports.review.page import CSP, CSS, SCRIPT, done_page, item_page
from reports.review_figures import review_lines

MAX_BODY = 64_000


class ReviewServer:
    """Serves one `ReviewSession`; `start()` in a thread, `url` to open, `stop()` to end."""

    def __init__(self, session: ReviewSession, port: int = 0,
                 min_reviewed: int | None = None) -> None:
        self.session = session
        self.token = secrets.token_urlsafe(24)
        self.min_reviewed = min_reviewed
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"review": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.token}/"

    def start(self) -> ReviewServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="siegeflow-review",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)

    # -- what the handler asks ----------------------------------------------------------

    def page(self) -> str:
        with self._lock:
            item = self.session.next_item()
            done, total = self.session.progress()
            if item is None:
                figures = (self.session.figures() if self.min_reviewed is None
                           else self.session.figures(self.min_reviewed))
                return done_page(self.session.run_id, total, review_lines(figures))
            return item_page(item, done, total, self.session.run_id)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        attempt_id, label, note = body.get("attempt_id"), body.get("label"), body.get("note")
        if not isinstance(attempt_id, int) or label not in LABEL_WORDS:
            raise ValueError("expected {attempt_id: int, label: true|false|skip, note}")
        if note is not None and not isinstance(note, str):
            raise ValueError("note must be text")
        with self._lock:
            item = self.session.label(attempt_id, label, note)
        human = None if label == "skip" else label == "true"
        return {
            "said": f"you said: {LABEL_WORDS[label]}",
            "panel": "broken" if item.panel else "held",
            "verdicts": [{"judge": k, "verdict": v} for k, v in item.verdicts.items()],
            "agrees": None if human is None else human == item.panel,
        }


class _Handler(BaseHTTPRequestHandler):
    review: ReviewServer
    def version_string(self) -> str:
        return "siegeflow-review"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the terminal is the reviewer's (and request paths hold the token)."""

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.end_headers()
        self.wfile.write(body)

    def _deny(self, status: int = HTTPStatus.FORBIDDEN, why: str = "forbidden") -> None:
        self._send(status, why.encode(), "text/plain; charset=utf-8")

    def _route(self) -> str | None:
        """The path after the token, or None (and a 403 sent) without the right token/host."""
        host = self.headers.get("Host", "")
        if host not in (f"127.0.0.1:{self.review.port}", f"localhost:{self.review.port}"):
            self._deny()
            return None
        parts = self.path.split("?", 1)[0].split("/", 2)
        if len(parts) < 3 or not hmac.compare_digest(parts[1].encode(),
                                                     self.review.token.encode()):
            self._deny()
            return None
        return parts[2]

    def do_GET(self) -> None:  # noqa: N802
        route = self._route()
        if route is None:
            return
        if route == "":
            self._send(HTTPStatus.OK, self.review.page().encode(), "text/html; charset=utf-8")
        elif route == "review.js":
            self._send(HTTPStatus.OK, SCRIPT.encode(), "text/javascript; charset=utf-8")
        elif route == "review.css":
            self._send(HTTPStatus.OK, CSS.encode(), "text/css; charset=utf-8")
        else:
            self._deny(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:  # noqa: N802
        route = self._route()
        if route is None:
            return
        if route != "label":
            self._deny(HTTPStatus.NOT_FOUND, "not found")
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host')}":
            self._deny()
            return
        if self.headers.get_content_type() != "application/json":
            self._deny(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "JSON only")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY:
                self._deny(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too large")
                return
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            reply = self.review.answer(body)
        except (ValueError, KeyError) as exc:
            self._deny(HTTPStatus.BAD_REQUEST, str(exc)[:200])
            return
        self._send(HTTPStatus.OK, json.dumps(reply).encode(), "application/json")

    def do_PUT(self) -> None:  # noqa: N802
        self._deny(HTTPStatus.METHOD_NOT_ALLOWED, "not allowed")

    do_DELETE = do_PUT
