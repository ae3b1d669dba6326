"""Making untrusted text (goals, attack prompts, target answers) safe to show.

Everything that came from a target, an attacker or a goal file is data: it is escaped for the
medium it lands in and never interpreted as markup.
"""

from __future__ import annotations

import html
import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def clean(text: str | None, limit: int | None = None) -> str:
    """Drop control and bidi-override characters, fix broken Unicode, truncate to `limit`."""
    if text is None:
        return ""
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    text = _CONTROL.sub("", text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def md_escape(text: str | None, limit: int | None = 200) -> str:
    """Untrusted text as inert Markdown on one line (safe inside a table cell).

    `<`, `>` and `&` become entities (no tag can open; quotes are harmless outside attributes,
    and their entities would contain `#`, which the next step escapes into visible noise);
    markup characters are backslash-escaped; a zero-width space after `://` and `www.` keeps
    renderers that auto-link URLs (Prefect's does) from turning hostile text into links.
    """
    text = clean(text, limit)
    text = html.escape(text, quote=False)
    text = _AUTOLINK.sub("\\1\u200b", text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return " ".join(text.split())


def html_escape(text: str | None, limit: int | None = None) -> str:
    return html.escape(clean(text, limit), quote=True)


# XML 1.0 forbids these code points even as character references (`clean` keeps them).
_XML_INVALID = re.compile("[\ufffe\uffff]")


def xml_text(text: str | None, limit: int | None = None) -> str:
    """Untrusted text made valid for an XML document (JUnit). Escaping is left to the writer."""
    return _XML_INVALID.sub("\ufffd", clean(text, limit))


def clip(text: str | None, limit: int) -> tuple[str, int]:
    """`clean` text cut to `limit` characters, and how many characters were cut off."""
    text = clean(text)
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit
