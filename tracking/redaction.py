"""Secret scrubbing applied to everything tracking writes: rows, traces and log messages.

Why one function: a red-teaming run carries API keys in target configs and headers, and the
database is shared and exported (reports, SARIF). ``redact`` is called on every config,
metadata and content value before it reaches the store or a log line, so no caller has to
remember to do it.

Rules (documented because users rely on them):

* A mapping key whose name matches ``key|token|secret|password|passwd|authorization|cookie|
  credential`` (case-insensitive, anywhere in the name) has its value replaced by ``"***"``.
  Exceptions that keep the data useful without carrying a secret: ``None`` stays ``None``;
  numbers and booleans under names that match only ``key``/``token`` are kept (``max_tokens:
  256`` and ``prompt_tokens: 12`` are counts; a numeric ``password`` is still redacted); the
  exact key names in ``NON_SECRET_KEYS`` (``keywords``, ``tokenizer``) are ordinary keys.
* Inside every string, things that look like credentials are replaced wherever they appear:
  ``Bearer <token>``, ``sk-...`` style API keys, GitHub/Slack/AWS/Google/Hugging Face tokens,
  JWTs, the password part of ``scheme://user:password@host`` URLs, ``key=value`` pairs whose
  name is secret-like (``api_key=...``, ``token: ...``) and secret-like query parameters.
* Values that are not JSON types are converted (dataclasses and pydantic models to dicts,
  sets/tuples to lists, datetimes to ISO strings, bytes to a length marker, anything else to
  ``str``), so the result always serialises; non-finite floats become strings because
  PostgreSQL's JSON rejects them.

Responses from the target are scrubbed too: a jailbreak that makes a model print something
shaped like a key still never puts that string in the database.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from functools import lru_cache
from pathlib import PurePath
from typing import Any

REDACTED = "***"

#: Key-name pattern from the project decision (substring, case-insensitive).
SECRET_KEY_PATTERN = re.compile(
    r"key|token|secret|password|passwd|authorization|cookie|credential", re.IGNORECASE
)
#: Exact key names (lower-case) that match the pattern but never hold a credential.
NON_SECRET_KEYS = frozenset({"keywords", "keyword", "tokenizer"})
#: Names that are secret whatever their value type (a numeric password is still a password).
_ALWAYS_SECRET = re.compile(r"secret|password|passwd|authorization|cookie|credential", re.I)

_MAX_DEPTH = 40
_MIN_SECRET_LEN = 8  # shorter strings cannot hold any of the patterns below

_NAME = r"(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|token|secret|client[_-]?secret|password|passwd|pwd|authorization|cookie|credentials?)"
_SECRET_WORDS = ("key", "token", "secret", "passw", "pwd", "authoriz", "cookie", "credential")

# Each family runs only when one of its literal triggers occurs in the lower-cased text: a
# plain substring test is ~20x cheaper than a regex scan, and most strings trigger nothing.
_FAMILIES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (("bearer",), re.compile(r"(?P<p>\b[Bb][Ee][Aa][Rr][Ee][Rr]\s+)[A-Za-z0-9._~+/=-]{6,}")),
    (("://",), re.compile(r"(?P<p>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@\"\\]+:)[^@\s/\"\\]+(?=@)")),
    (
        _SECRET_WORDS,
        re.compile(
            r"(?P<p>[?&]" + _NAME + r"=)[^&\s#\"'\\]+"
            r"|(?P<q>\b" + _NAME + r"[\"']?\s*[:=]\s*[\"']?)(?!bearer\b)[^\s\"',;&}\\]{4,}",
            re.IGNORECASE,
        ),
    ),
    (("sk-",), re.compile(r"(?P<p>\bsk-)[A-Za-z0-9_-]{16,}")),
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}"),
    ),
    (("xox",), re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    (("akia",), re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    (("aiza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    (("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    (("eyj",), re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}")),
)


def _replace(match: re.Match[str]) -> str:
    prefix = match.group(match.lastgroup) if match.lastgroup else ""
    return f"{prefix}{REDACTED}"


def redact_text(text: str) -> str:
    """Scrub credential-looking substrings from one string."""
    if len(text) < _MIN_SECRET_LEN:
        return text
    low = text.lower()
    for triggers, pattern in _FAMILIES:
        for trigger in triggers:
            if trigger in low:
                text = pattern.sub(_replace, text)
                break
    return text


@lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """Whether a mapping key names a secret (see the module rules)."""
    return name.lower() not in NON_SECRET_KEYS and SECRET_KEY_PATTERN.search(name) is not None


@lru_cache(maxsize=4096)
def _keeps_scalars(name: str) -> bool:
    """``key``/``token`` names keep numbers and flags (``max_tokens``); the others never do."""
    return _ALWAYS_SECRET.search(name) is None


def _must_redact(name: str, value: Any) -> bool:
    if not is_secret_key(name) or value is None:
        return False
    scalar = isinstance(value, (bool, int, float)) and not isinstance(value, Enum)
    return not (scalar and _keeps_scalars(name))


def redact(obj: Any) -> Any:
    """Return a JSON-safe copy of ``obj`` with every secret replaced by ``"***"``."""
    return _redact(obj, 0)


def _redact(obj: Any, depth: int) -> Any:
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, Enum):
        return _redact(obj.value, depth)
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if depth >= _MAX_DEPTH:
        return "<max depth>"
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name = key.value if isinstance(key, Enum) else key
            name = name if isinstance(name, str) else str(name)
            if _must_redact(name, value):
                out[name] = REDACTED
            else:
                out[name] = _redact(value, depth + 1)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_redact(item, depth + 1) for item in obj]
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, PurePath):
        return redact_text(str(obj))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return _redact(fields, depth)
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump) and not isinstance(obj, type):
        return _redact(model_dump(), depth)
    return redact_text(str(obj))


class RedactingFilter(logging.Filter):
    """Logging filter that scrubs the formatted message (install it on handlers you own).

    The trackers already scrub what they log; this filter is for code that logs configs or
    exceptions itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True
