"""Per-goal category assignment (``category_classifier_config`` of ``TrackingCoordinator.create``).

A goal that arrives with a category keeps it; the classifier only fills the gap, so the
per-category ASR breakdown covers goal sets that carry no categories. Supported config
(a mapping; unknown keys are an error, because a typo would silently disable it):

* ``keywords``: ``{category: [keyword, ...]}``. A keyword matches as a whole word or phrase,
  case-insensitively; the first category (in mapping order) with a match wins.
* ``classifier``: a callable ``(goal_text) -> category | None``, tried before keywords.
* ``default``: the category when nothing matches (else the goal stays uncategorised).

Shorthand: a mapping whose values are all lists of strings is the keyword map itself,
e.g. ``{"cyber": ["malware", "exploit"], "fraud": ["phishing"]}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_KNOWN_KEYS = frozenset({"keywords", "classifier", "default"})


@dataclass(frozen=True, kw_only=True)
class CategoryClassifier:
    """Assigns a category to a goal text (see module docstring)."""

    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    classifier: Callable[[str], str | None] | None = None
    default: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> CategoryClassifier | None:
        if not config:
            return None
        if not isinstance(config, Mapping):
            raise TypeError("category_classifier_config must be a mapping")
        if not set(config) <= _KNOWN_KEYS and all(_is_word_list(v) for v in config.values()):
            config = {"keywords": config}
        unknown = set(config) - _KNOWN_KEYS
        if unknown:
            raise ValueError(
                f"unknown category_classifier_config keys {sorted(unknown)}; "
                f"expected {sorted(_KNOWN_KEYS)} or a {{category: [keywords]}} map"
            )
        keywords = config.get("keywords") or {}
        if not isinstance(keywords, Mapping) or not all(
            _is_word_list(v) for v in keywords.values()
        ):
            raise ValueError(
                "category_classifier_config['keywords'] must map category -> [keywords]"
            )
        classifier = config.get("classifier")
        if classifier is not None and not callable(classifier):
            raise TypeError("category_classifier_config['classifier'] must be callable")
        patterns = tuple(
            (str(category), _word_pattern(words)) for category, words in keywords.items() if words
        )
        default = config.get("default")
        return cls(patterns=patterns, classifier=classifier, default=default)

    def classify(self, text: str) -> str | None:
        if self.classifier is not None:
            category = self.classifier(text)
            if category:
                return str(category)
        for category, pattern in self.patterns:
            if pattern.search(text):
                return category
        return self.default


def _is_word_list(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(word, str) for word in value)
    )


def _word_pattern(words: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(word.strip()) for word in words if word.strip())
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
