"""Bring-your-own judge prompt: the prompt comes from a template file, the verdict from a
configurable parse of the answer.

Why: the best judges in the field are fine-tuned classifiers with a fixed prompt format
(HarmBench's Llama-2 classifier, Llama Guard), usually served by vLLM. Plugging one in must not
need code: write its prompt as a template, point `model` at the server, say which words (or
which regex score) mean success. `mode: text` sends the rendered template verbatim to
`/v1/completions`, as those classifiers expect; `mode: chat` sends it as the user message.

Template syntax: `{goal}`, `{context}`, `{prompt}` (the attack prompt sent to the target) and
`{response}` (the target's answer, decoded); `{{` and `}}` are literal braces. The file is read
and checked when the config is validated, so a missing file or an unknown placeholder stops a
run before it starts, naming the file, line and placeholder.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from judges.base import ChatFn, JudgeParseError, ModelJudge, ModelJudgeConfig, Verdict, snippet
from judges.registry import judge
from targets.completion import Completion
from targets.messages import ChatMessage, SystemMessage, UserMessage

PLACEHOLDERS: tuple[str, ...] = ("goal", "context", "prompt", "response")

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(ValueError):
    """A judge template file that cannot be used (missing, unreadable, bad placeholder)."""


def check_template(source: str, where: str) -> set[str]:
    """The placeholders `source` uses; TemplateError naming `where` and the line for an unknown
    placeholder, a stray brace, or a template that never shows the judge the response."""
    seen: set[str] = set()
    for match in _TOKEN.finditer(source):
        token, name = match.group(0), match.group(1)
        line = source.count("\n", 0, match.start()) + 1
        if token in ("{{", "}}"):
            continue
        if name is None:
            raise TemplateError(
                f"{where}, line {line}: unmatched {token!r} (write {token * 2} for a literal brace)"
            )
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise TemplateError(
                f"{where}, line {line}: unknown placeholder {token}; known placeholders: {known} "
                "(write {{ and }} for literal braces)"
            )
        seen.add(name)
    if "response" not in seen:
        raise TemplateError(f"{where}: the template has no {{response}} placeholder, so the "
                            "judge would never see the answer it judges")
    return seen


def render(source: str, values: dict[str, str]) -> str:
    """Fill the template in one pass: braces inside the values are never read as placeholders."""

    def fill(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return values[name]  # check_template guarantees a known name

    return _TOKEN.sub(fill, source)


#: Templates shipped with siegeflow, usable as `builtin:<name>` (see templates/README.md).
BUILTIN_DIR = Path(__file__).parent / "templates"


def builtin_templates() -> list[str]:
    return sorted(path.stem for path in BUILTIN_DIR.glob("*.txt"))


def resolve_template(path: str) -> Path:
    """`builtin:<name>` → the shipped file; anything else → that path, made absolute (a run's
    tasks may start in another directory)."""
    if path.startswith("builtin:"):
        name = path.removeprefix("builtin:")
        if name not in builtin_templates():
            raise TemplateError(f"no built-in judge template {name!r}; built-in templates: "
                                f"{', '.join(builtin_templates())}")
        return BUILTIN_DIR / f"{name}.txt"
    return Path(path).expanduser().absolute()


def load_template(path: str | Path) -> str:
    """The checked text of a template file; TemplateError naming the file otherwise."""
    file = resolve_template(str(path))
    try:
        source = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"judge template file {str(file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"judge template file {str(file)!r} cannot be read: {exc}") from None
    source = source.removesuffix("\n")  # the newline editors add is not part of the prompt
    check_template(source, f"judge template {str(file)!r}")
    return source


# -- parses ----------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")


class WordsParse(BaseModel):
    """The answer's first word decides (case-insensitive): one of `success` or of `failure`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["words"] = "words"
    success: list[str] = Field(default_factory=lambda: ["yes"], min_length=1)
    failure: list[str] = Field(default_factory=lambda: ["no"], min_length=1)

    @field_validator("success", "failure", mode="before")
    @classmethod
    def _no_yaml_booleans(cls, value: Any) -> Any:
        if isinstance(value, list) and any(isinstance(v, bool) for v in value):
            raise ValueError("got a boolean where a word was expected: YAML reads yes/no/on/off "
                             "unquoted as true/false, so quote the words, e.g. ['yes']")
        return value

    @field_validator("success", "failure")
    @classmethod
    def _single_words(cls, value: list[str]) -> list[str]:
        words = [w.strip().lower() for w in value]
        bad = [w for w in words if _WORD.fullmatch(w) is None]
        if bad:
            raise ValueError(f"each entry must be one word, got {bad}")
        return words

    @model_validator(mode="after")
    def _disjoint(self) -> WordsParse:
        both = sorted(set(self.success) & set(self.failure))
        if both:
            raise ValueError(f"word(s) {both} are both success and failure words")
        return self

    def read(self, text: str) -> tuple[bool, float]:
        words = _WORD.findall(text.lower())
        first = words[0] if words else ""
        if first in self.success:
            return True, 1.0
        if first in self.failure:
            return False, 0.0
        expected = ", ".join(repr(w) for w in (*self.success, *self.failure))
        raise JudgeParseError(f"expected the answer to start with one of {expected}, "
                              f"got {snippet(text)}")


class RegexParse(BaseModel):
    """A regex extracts a number from the answer (the last match wins, so reasoning may come
    first); success when it is at least `threshold`. `min`/`max` give the answer's scale,
    mapped to the verdict's 0..1 score; a number outside it is unparseable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["regex"]
    pattern: str = Field(description="A regex with one group (or a group named 'score') "
                                     "capturing the number, e.g. 'Rating: \\[\\[(\\d+)\\]\\]'.")
    threshold: float = Field(description="Success when the score is at least this.")
    min: float = 0.0
    max: float = 1.0
    ignore_case: bool = True

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if "score" not in compiled.groupindex and compiled.groups != 1:
            raise ValueError("the pattern needs exactly one capturing group, or one named "
                             f"'score' (it has {compiled.groups})")
        return value

    @model_validator(mode="after")
    def _scale(self) -> RegexParse:
        if not math.isfinite(self.min) or not math.isfinite(self.max) or self.max <= self.min:
            raise ValueError(f"need finite min < max, got min={self.min}, max={self.max}")
        if not self.min <= self.threshold <= self.max:
            raise ValueError(f"threshold {self.threshold} is outside [{self.min}, {self.max}]")
        return self

    def read(self, text: str) -> tuple[bool, float]:
        flags = re.IGNORECASE if self.ignore_case else 0
        matches = list(re.finditer(self.pattern, text, flags))
        if not matches:
            raise JudgeParseError(f"no match for {self.pattern!r} in {snippet(text)}")
        last = matches[-1]
        raw = last.group("score") if "score" in last.re.groupindex else last.group(1)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise JudgeParseError(f"{raw!r} (matched by {self.pattern!r}) is not a number") from None
        if not math.isfinite(value) or not self.min <= value <= self.max:
            raise JudgeParseError(f"score {raw} is outside [{self.min:g}, {self.max:g}]")
        return value >= self.threshold, (value - self.min) / (self.max - self.min)


Parse = Annotated[WordsParse | RegexParse, Field(discriminator="kind")]


# -- the judge -------------------------------------------------------------------------------


class TemplateJudgeConfig(ModelJudgeConfig):
    template: str = Field(
        min_length=1,
        description="Path of the prompt template file, or builtin:<name> ({goal}, {context}, "
        "{prompt}, {response}; {{ and }} for literal braces). A relative path is read from the "
        "current directory.",
    )
    mode: Literal["chat", "text"] = Field(
        default="chat",
        description="'chat': /v1/chat/completions, the template as the user message; 'text': "
        "/v1/completions, the template sent verbatim (classifiers with a raw prompt format).",
    )
    system: str | None = Field(default=None, description="System message (chat mode only).")
    parse: Parse = Field(
        default_factory=WordsParse,
        description="{kind: words, success: [yes], failure: [no]} (first word decides) or "
        "{kind: regex, pattern: ..., threshold: ..., min: 0, max: 1}.",
    )
    _source: str = PrivateAttr(default="")

    @field_validator("template")
    @classmethod
    def _readable(cls, value: str) -> str:
        load_template(value)  # errors here are reported against the 'template' option
        return value if value.startswith("builtin:") else str(resolve_template(value))

    @model_validator(mode="after")
    def _load(self) -> TemplateJudgeConfig:
        if self.mode == "text":
            if self.system is not None:
                raise ValueError("'system' is for chat mode; in text mode put it in the template")
            for option in ("system_prompt", "guardrail"):
                value = (self.model.get(option) if isinstance(self.model, dict)
                         else getattr(self.model, option, None))
                if value is not None:
                    raise ValueError(f"model.{option} cannot apply to a text completion")
        self._source = load_template(self.template)
        return self

    @property
    def source(self) -> str:
        return self._source


@judge("template")
class TemplateJudge(ModelJudge[TemplateJudgeConfig]):
    """Your prompt template (chat or text completion) + a yes/no-word or regex-score parse."""

    Config = TemplateJudgeConfig

    @functools.cached_property
    def takes_context(self) -> bool:  # type: ignore[override]  # a class flag, computed here
        """The template has a `{context}` slot: a run then passes a contextual goal's context
        apart from its behaviour (else the goal text carries both)."""
        return "context" in check_template(self.config.source, self.config.template)

    def messages(self, goal: str, prompt: str, response: str) -> list[ChatMessage]:
        return self.render(goal=goal, prompt=prompt, response=response)

    def render(self, *, goal: str, prompt: str, response: str,
               context: str | None = None) -> list[ChatMessage]:
        values = {"goal": goal.strip(), "context": (context or "").strip(), "prompt": prompt,
                  "response": response}
        messages: list[ChatMessage] = [UserMessage(content=render(self.config.source, values))]
        if self.config.system is not None:
            messages.insert(0, SystemMessage(content=self.config.system))
        return messages

    async def evaluate(self, goal: str, prompt: str, response: str, *,
                       context: str | None = None) -> Verdict:
        """As every judge; `context` fills `{context}` (e.g. HarmBench's contextual behaviours)."""
        return await self._ask(self.render(goal=goal, prompt=prompt, response=response,
                                           context=context))

    def parse(self, text: str) -> tuple[bool, float]:
        return self.config.parse.read(text)

    def _model_call(self) -> ChatFn:
        if self.config.mode == "chat":
            return super()._model_call()
        from targets.chat import complete_for_model

        call = complete_for_model(self.config.model)

        async def text_call(messages: Sequence[ChatMessage]) -> Completion:
            return await call(messages[-1].text)

        return text_call
