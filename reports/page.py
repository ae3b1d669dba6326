"""The self-contained HTML page around every siegeflow report: inlined CSS/JS and a strict CSP.

Why a hash-based Content-Security-Policy: the page shows text written by attackers and targets.
Everything is escaped (`reports.text`), and the policy is the second wall: only the one script
and the one stylesheet whose SHA-256 is listed may run or apply, nothing may be fetched, no
form or base URL may be used, and Trusted Types turn any markup-parsing sink into an error.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path

from reports.text import html_escape

ASSETS = Path(__file__).parent / "assets"


@cache
def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def sha256_source(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def csp(script: str, style: str) -> str:
    return (
        "default-src 'none'; "
        f"script-src {sha256_source(script)}; "
        f"style-src {sha256_source(style)}; "
        "img-src data:; base-uri 'none'; form-action 'none'; "
        "require-trusted-types-for 'script'; trusted-types 'none'"
    )


def page(title: str, body: str, *, with_csp: bool = True) -> str:
    """A complete HTML document. `with_csp=False` exists only so tests can show that escaping
    alone already keeps hostile text inert."""
    script, style = asset("report.js"), asset("report.css")
    policy = (
        f'<meta http-equiv="Content-Security-Policy" content="{html_escape(csp(script, style))}">'
        if with_csp else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"{policy}"
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="siegeflow">'
        f"<title>{html_escape(title, 200)}</title>"
        f"<style>{style}</style></head>\n"
        f"<body>{body}\n<script>{script}</script></body></html>\n"
    )
