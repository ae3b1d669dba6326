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
  exact key names in ``NON_SECRET_KEYS`` (``keywords``, ``tokenizer``, a run summary's
  ``judge_keys``: the judges that decided it) are ordinary keys; their strings are still scanned.
* A key ending in ``_env`` (``api_key_env``) holds the NAME of an environment variable, which
  is not a secret and is what `siegeflow resume` needs to call the target again: a value shaped
  like a variable name (``OPENAI_API_KEY``) is kept; a value that looks like a key pasted into
  the wrong field (``sk-...``, a long mixed-case token) is still redacted. The same holds for
  ``*_block`` fields (``api_key_block``: the name of a Prefect Secret block).
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

``redact_json`` is the same rule for the trace hot path, computed on the serialised document
(one scan instead of one per string); the patterns understand JSON escapes (``\n`` counts as
whitespace) and never replace quotes or backslashes, so the output stays valid JSON.
"""

from __future__ import annotations

import dataclasses
import json
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
NON_SECRET_KEYS = frozenset({"keywords", "keyword", "tokenizer", "judge_keys"})
#: Names that are secret whatever their value type (a numeric password is still a password).
_ALWAYS_SECRET = re.compile(r"secret|password|passwd|authorization|cookie|credential", re.I)

#: An environment variable NAME (what ``*_env`` fields hold), and what a pasted key looks like.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_KEY_SHAPED = re.compile(r"[A-Za-z0-9_]{32,}")
_BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")

_MAX_DEPTH = 40
_MIN_SECRET_LEN = 8  # shorter strings cannot hold any of the patterns below

_NAME = (
    r"(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|token|secret"
    r"|client[_-]?secret|password|passwd|pwd|authorization|cookie|credentials?)"
)
_SECRET_WORDS = ("key", "token", "secret", "passw", "pwd", "authoriz", "cookie", "credential")
# The patterns also run over serialised JSON (``redact_json``), where a newline is the two
# characters backslash-n: ``_B`` is a word boundary that also holds after such an escape,
# ``_WS`` whitespace that includes it, ``_Q`` an optional (possibly escaped) quote.
_B = r"(?:\b|(?<=\\[nrt]))"
_WS = r"(?:\s|\\[nrt])"
_Q = r"(?:\\*[\"'])?"
_LITERAL = r"(?:true|false|null|-?\d[\d.eE+-]*)(?:[\s,}\]\\]|$)"

_VALUE = r"(?!bearer\b)[^\s\"',;&}\\]{4,}"
_QUERY = r"(?P<p>[?&]" + _NAME + r"=)[^&\s#\"'\\]+"
# free text: name: value, name=value, 'name': 'value', "name": "value"
_PAIR_TEXT = r"(?P<r>" + _NAME + _Q + _WS + r"*[:=]" + _WS + r"*" + _Q + r")"
# In a serialised document a key is followed by an unescaped quote; a bare JSON literal after
# it (``"max_tokens": 256``, ``"token": null``) is the structural walk's business, not text.
_PAIR_JSON_KEY = r"(?P<q>" + _NAME + r'"' + _WS + r"*:" + _WS + r"*(?!" + _LITERAL + r')"?)'
_PAIR_JSON_TEXT = r"(?P<r>" + _NAME + r'(?!")' + _Q + _WS + r"*[:=]" + _WS + r"*" + _Q + r")"
_PAIRS_TEXT = re.compile(_QUERY + r"|" + _B + _PAIR_TEXT + _VALUE, re.IGNORECASE)
_PAIRS_JSON = re.compile(
    _QUERY + r"|" + _B + r"(?:" + _PAIR_JSON_KEY + r"|" + _PAIR_JSON_TEXT + r")" + _VALUE,
    re.IGNORECASE,
)

# A family is (triggers, text pattern, JSON-document pattern, back). Families run only where
# one of their literal triggers occurs in the lower-cased text: ``str.find`` is far cheaper
# than a regex scan, and most strings trigger nothing. With ``back`` set, the pattern is only
# tried at positions from ``back`` characters before each trigger occurrence up to it (a match
# cannot start elsewhere), which avoids scanning long texts with slow alternations;
# ``back=None`` scans the whole text.
_Family = tuple[tuple[str, ...], re.Pattern[str], re.Pattern[str], int | None]


def _family(triggers: tuple[str, ...], pattern: str, back: int | None) -> _Family:
    compiled = re.compile(pattern)
    return (triggers, compiled, compiled, back)


_FAMILIES: tuple[_Family, ...] = (
    _family(
        ("bearer",), _B + r"(?P<p>[Bb][Ee][Aa][Rr][Ee][Rr]" + _WS + r"+)[A-Za-z0-9._~+/=-]{6,}", 0
    ),
    _family(("://",), r"(?P<p>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@\"\\]+:)[^@\s/\"\\]+(?=@)", None),
    # back: the longest name prefix before its secret word ("[?&]refresh_", "client_")
    (_SECRET_WORDS, _PAIRS_TEXT, _PAIRS_JSON, 14),
    _family(("sk-",), _B + r"(?P<p>sk-)[A-Za-z0-9_-]{16,}", 0),
    _family(
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        _B + r"(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}",
        0,
    ),
    _family(("xox",), _B + r"xox[abprs]-[A-Za-z0-9-]{10,}", 0),
    _family(("akia",), _B + r"AKIA[0-9A-Z]{16}\b", 0),
    _family(("aiza",), _B + r"AIza[0-9A-Za-z_-]{35}", 0),
    _family(("hf_",), _B + r"hf_[A-Za-z0-9]{30,}", 0),
    _family(("eyj",), _B + r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}", 0),
)


#: Index of the family whose triggers are the secret key words (it also gates the key walk).
_KEY_FAMILY = next(i for i, family in enumerate(_FAMILIES) if family[0] is _SECRET_WORDS)
#: Every trigger with the index of its family, so the common "nothing fired" case is one loop.
_TRIGGERS = tuple(
    (trigger, index) for index, family in enumerate(_FAMILIES) for trigger in family[0]
)


def _replace(match: re.Match[str]) -> str:
    prefix = match.group(match.lastgroup) if match.lastgroup else ""
    return f"{prefix}{REDACTED}"


def redact_text(text: str) -> str:
    """Scrub credential-looking substrings from one string."""
    if len(text) < _MIN_SECRET_LEN:
        return text
    return _scrub(text, text.lower())


def _fired(low: str) -> set[int]:
    return {family for trigger, family in _TRIGGERS if trigger in low}


def _scrub(text: str, low: str, fired: set[int] | None = None, document: bool = False) -> str:
    """Apply the fired families; ``document``: ``text`` is serialised JSON (see _PAIRS_JSON)."""
    for index in sorted(_fired(low) if fired is None else fired):
        triggers, text_pattern, json_pattern, back = _FAMILIES[index]
        pattern = json_pattern if document else text_pattern
        if back is None or len(low) != len(text):  # (lower() changed some lengths: scan)
            scrubbed = pattern.sub(_replace, text)
        else:
            scrubbed = _sub_near(pattern, text, _hits(low, triggers), back)
        if scrubbed is not text:
            text, low = scrubbed, scrubbed.lower()
    return text


def _hits(low: str, triggers: tuple[str, ...]) -> list[int]:
    hits: list[int] = []
    for trigger in triggers:
        at = low.find(trigger)
        while at != -1:
            hits.append(at)
            at = low.find(trigger, at + 1)
    return sorted(hits)


def _sub_near(pattern: re.Pattern[str], text: str, hits: list[int], back: int) -> str:
    pieces: list[str] = []
    done = 0
    for hit in hits:
        if hit < done:
            continue
        for start in range(max(done, hit - back), hit + 1):
            match = pattern.match(text, start)
            if match is not None:
                pieces += (text[done : match.start()], _replace(match))
                done = match.end()
                break
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


@lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """Whether a mapping key names a secret (see the module rules)."""
    return name.lower() not in NON_SECRET_KEYS and SECRET_KEY_PATTERN.search(name) is not None


@lru_cache(maxsize=4096)
def _keeps_scalars(name: str) -> bool:
    """``key``/``token`` names keep numbers and flags (``max_tokens``); the others never do."""
    return _ALWAYS_SECRET.search(name) is None


def is_env_name_field(name: str, value: Any) -> bool:
    """A ``*_env`` / ``*_block`` field holding a variable's or a Prefect Secret block's name
    (kept), not a key pasted there by mistake."""
    if not isinstance(value, str):
        return False
    if name.lower().endswith("_block"):
        return _BLOCK_NAME.fullmatch(value) is not None and not value.startswith("sk-") \
            and len(value) < 32
    if not name.lower().endswith("_env"):
        return False
    if _ENV_NAME.fullmatch(value) is None:
        return False
    return value.isupper() or _KEY_SHAPED.fullmatch(value) is None


def _must_redact(name: str, value: Any) -> bool:
    if not is_secret_key(name) or value is None or is_env_name_field(name, value):
        return False
    scalar = isinstance(value, (bool, int, float)) and not isinstance(value, Enum)
    return not (scalar and _keeps_scalars(name))


def redact(obj: Any) -> Any:
    """Return a JSON-safe copy of ``obj`` with every secret replaced by ``"***"``."""
    return _redact(obj, 0, True)


def redact_json(obj: Any) -> str:
    """``json.dumps(redact(obj))``, computed faster (the hot path of trace writes).

    The document is serialised first and scanned once for secret-looking values (the
    patterns keep JSON valid: they never replace quotes or backslashes). The structural
    walk that blanks secret-named keys runs only if a secret-like word occurs at all, and
    non-JSON values are converted as ``redact`` converts them.
    """
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_json_default)
    except (TypeError, ValueError):  # non-string keys, NaN: take the general path
        text = None
    if text is not None:
        low = text.lower()
        fired = _fired(low)
        if _KEY_FAMILY not in fired:
            return _scrub(text, low, fired, document=True)
    text = json.dumps(_redact(obj, 0, False), ensure_ascii=False)
    return _scrub(text, text.lower(), document=True)


def _json_default(obj: Any) -> Any:
    return _redact(obj, 0, False)


def _redact(obj: Any, depth: int, scan: bool) -> Any:
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return redact_text(obj) if scan else obj
    if isinstance(obj, Enum):
        return _redact(obj.value, depth, scan)
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
                out[name] = _redact(value, depth + 1, scan)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_redact(item, depth + 1, scan) for item in obj]
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, PurePath):
        return _redact(str(obj), depth, scan)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return _redact(fields, depth, scan)
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump) and not isinstance(obj, type):
        return _redact(model_dump(), depth, scan)
    return _redact(str(obj), depth, scan)


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
