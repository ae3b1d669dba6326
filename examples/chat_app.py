"""A small aiohttp chat app to point siegeflow at: `python -m examples.chat_app --port 8088`.

What a real app has and the HTTP target must cope with: a bearer token (`CHAT_APP_TOKEN`),
nested JSON in and out, a session cookie that carries the conversation on the server, a
streaming (Server-Sent Events) route, and routes that fail (`/api/boom`: 500) or hang
(`/api/slow`). See docs/targets.md and examples/chat_app.yaml.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid

from aiohttp import web

from examples.support_bot import reply

COOKIE = "sid"


def make_app(token: str, *, slow_s: float = 30.0) -> web.Application:
    """The app; `token` is the bearer token every request must carry, `slow_s` how long
    `/api/slow` hangs."""
    sessions: dict[str, list[str]] = {}

    def authorised(request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {token}":
            raise web.HTTPUnauthorized(text='{"error": "bad token"}', content_type="application/json")

    async def turn(request: web.Request) -> tuple[str, str, int]:
        authorised(request)
        body = await request.json()
        text = body["input"]["text"]
        sid = request.cookies.get(COOKIE) or uuid.uuid4().hex
        history = sessions.setdefault(sid, [])
        history.append(text)
        return sid, reply(history), len(history)

    async def chat(request: web.Request) -> web.Response:
        sid, answer, n = await turn(request)
        response = web.json_response({"data": {"reply": {"text": answer}}, "turn": n,
                                      "session": sid})
        response.set_cookie(COOKIE, sid, httponly=True)
        return response

    async def stream(request: web.Request) -> web.StreamResponse:
        sid, answer, _ = await turn(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.set_cookie(COOKIE, sid, httponly=True)
        await response.prepare(request)
        for word in answer.split(" "):
            await response.write(f"data: {json.dumps({'delta': word + ' '})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def boom(request: web.Request) -> web.Response:
        authorised(request)
        return web.Response(status=500, text="internal error: database unavailable")

    async def slow(request: web.Request) -> web.Response:
        authorised(request)
        await asyncio.sleep(slow_s)
        return web.json_response({"data": {"reply": {"text": "too late"}}})

    app = web.Application()
    app.add_routes([web.post("/api/chat", chat), web.post("/api/stream", stream),
                    web.post("/api/boom", boom), web.post("/api/slow", slow)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8088)
    args = parser.parse_args()
    token = os.environ.get("CHAT_APP_TOKEN")
    if not token:
        raise SystemExit("set CHAT_APP_TOKEN (the bearer token the app accepts)")
    web.run_app(make_app(token), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
