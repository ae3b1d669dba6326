"""Goal tests: the real published files in ../shared/data, a throwaway cache, no internet."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty cache; downloads are off unless a test turns them on."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIEGEFLOW_CACHE_DIR", str(cache))
    monkeypatch.setenv("SIEGEFLOW_OFFLINE", "1")
    monkeypatch.delenv("SIEGEFLOW_GOALS_PATH", raising=False)
    return cache


@pytest.fixture(scope="session")
def shared_data() -> Path:
    # The published files live next to the repository, never in it; a missing folder is a
    # failure (the tests would otherwise prove nothing about the real formats).
    assert SHARED_DATA.is_dir(), f"expected the published data files in {SHARED_DATA}"
    return SHARED_DATA


class FileServer:
    """A tiny HTTP server on 127.0.0.1 serving fixed bytes per path, counting requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
