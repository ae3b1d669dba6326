"""The `template` judge: the user's prompt file (checked at config time), rendering, the two
parses, and the retry-then-error rule for unparseable answers (model call faked here; the
real HTTP path is in test_template_e2e.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from judges import JudgeError, JudgePanel, build_judge, parse_spec
from judges.template import BUILTIN_DIR, builtin_templates, check_template, render
from targets.messages import wire
from tests.judges.fakes import replies

MODEL = {"model": "openai/judge", "api_base": "http://127.0.0.1:9/v1"}


def write(tmp_path: Path, text: str, name: str = "judge.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def spec(template: Path | str, **options: object) -> dict[str, object]:
    return {"name": "template", "model": MODEL, "template": str(template), **options}


def judge_with(chat, template: Path | str, **options: object):
    return build_judge(spec(template, **options), chat=chat)


def test_renders_every_placeholder_once_and_keeps_braces_in_values_inert(tmp_path):
    path = write(tmp_path, "C={context}|G={goal}|P={prompt}|R={response}|{{literal}}\n")
    chat = replies("yes")
    judge = judge_with(chat, path)
    verdict = asyncio.run(judge.evaluate("  goal {response} ", "prompt {goal}", "resp {context}",
                                         context="ctx {prompt}"))
    assert verdict.success is True and verdict.score == 1.0 and verdict.judge == "template"
    (messages,) = chat.calls
    assert wire(messages) == [{"role": "user", "content":
                         "C=ctx {prompt}|G=goal {response}|P=prompt {goal}|R=resp {context}"
                         "|{literal}"}]


def test_context_is_empty_when_not_given_and_system_message_comes_first(tmp_path):
    path = write(tmp_path, "[{context}] {response}")
    chat = replies("no")
    judge = judge_with(chat, path, system="You are a strict classifier.")
    verdict = asyncio.run(judge.evaluate("g", "p", "r"))
    assert verdict.success is False and verdict.score == 0.0
    assert wire(chat.calls[0]) == [{"role": "system", "content": "You are a strict classifier."},
                             {"role": "user", "content": "[] r"}]


@pytest.mark.parametrize("source,problem", [
    ("Behavior: {behavior}\nGeneration: {response}", "line 1: unknown placeholder {behavior}"),
    ("{goal}\n\n{Response}", "line 3: unknown placeholder {Response}"),
    ("{response} {goal!r}", "unknown placeholder {goal!r}"),
    ("{response} {}", "unknown placeholder {}"),
    ("{response}\n{ unbalanced", "line 2: unmatched '{'"),
    ("{response} }", "unmatched '}'"),
    ("Only {goal} here", "no {response} placeholder"),
])
def test_bad_template_is_a_config_error_naming_file_line_and_placeholder(tmp_path, source,
                                                                           problem):
    path = write(tmp_path, source)
    with pytest.raises(JudgeError) as info:
        parse_spec(spec(path))
    message = str(info.value)
    assert str(path) in message and problem in message and "'template'" in message


def test_missing_file_is_a_config_error_before_any_model_call(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(JudgeError, match=r"judge template file '.*nope\.txt' does not exist"):
        JudgePanel([spec(missing)], chat=replies("yes"))


def test_relative_path_is_resolved_when_the_config_is_read(tmp_path, monkeypatch):
    write(tmp_path, "{response}", "rel.txt")
    monkeypatch.chdir(tmp_path)
    judge = judge_with(replies("yes"), "rel.txt")
    assert judge.config.template == str(tmp_path / "rel.txt")


def test_words_parse_first_word_case_insensitive_with_custom_words(tmp_path):
    path = write(tmp_path, "{response}")
    guard = {"kind": "words", "success": ["Unsafe"], "failure": ["safe"]}
    for answer, expected in [("unsafe\nO3", True), ("  **Safe**", False), ("UNSAFE.", True),
                             ("safe, nothing here", False)]:
        verdict = asyncio.run(judge_with(replies(answer), path, parse=guard).evaluate("g", "p", "r"))
        assert verdict.success is expected, answer


@pytest.mark.parametrize("answer", ["", "Maybe", "The answer is yes", "yesno", "unsafe"])
def test_words_parse_unparseable_is_retried_then_a_judge_error(tmp_path, answer):
    chat = replies(answer)
    verdict = asyncio.run(judge_with(chat, write(tmp_path, "{response}"), parse_retries=2)
                          .evaluate("g", "p", "r"))
    assert len(chat.calls) == 3
    assert verdict.success is None and verdict.score is None
    assert verdict.error.startswith("unparseable: ") and "'yes', 'no'" in verdict.error


def test_unparseable_then_parseable_is_a_verdict(tmp_path):
    chat = replies("hmm", "Yes", cost=0.01)
    verdict = asyncio.run(judge_with(chat, write(tmp_path, "{response}")).evaluate("g", "p", "r"))
    assert len(chat.calls) == 2 and verdict.success is True
    assert verdict.cost_usd == pytest.approx(0.02)


def test_regex_parse_score_threshold_and_scale(tmp_path):
    rating = {"kind": "regex", "pattern": r"Rating:\s*\[\[(\d+)\]\]", "threshold": 8,
              "min": 1, "max": 10}
    path = write(tmp_path, "{response}")
    cases = [("Rating: [[10]]", True, 1.0), ("Reasoning... Rating: [[2]] then rating: [[8]]",
                                             True, 7 / 9), ("rating: [[7]]", False, 6 / 9)]
    for answer, success, score in cases:
        verdict = asyncio.run(judge_with(replies(answer), path, parse=rating)
                              .evaluate("g", "p", "r"))
        assert (verdict.success, verdict.score) == (success, pytest.approx(score)), answer


def test_regex_named_group_and_out_of_scale_is_unparseable(tmp_path):
    parse = {"kind": "regex", "pattern": r"(harm)=(?P<score>[0-9.]+)", "threshold": 0.5}
    path = write(tmp_path, "{response}")
    ok = asyncio.run(judge_with(replies("harm=0.75"), path, parse=parse).evaluate("g", "p", "r"))
    assert (ok.success, ok.score) == (True, 0.75)
    chat = replies("harm=1.5")
    bad = asyncio.run(judge_with(chat, path, parse=parse, parse_retries=1).evaluate("g", "p", "r"))
    assert len(chat.calls) == 2 and bad.success is None and "outside [0, 1]" in bad.error
    none = asyncio.run(judge_with(replies("no number"), path, parse=parse, parse_retries=0)
                       .evaluate("g", "p", "r"))
    assert none.success is None and "no match" in none.error


@pytest.mark.parametrize("parse,problem", [
    ({"kind": "regex", "pattern": "(", "threshold": 0.5}, "not a valid regular expression"),
    ({"kind": "regex", "pattern": r"\d+", "threshold": 0.5}, "exactly one capturing group"),
    ({"kind": "regex", "pattern": r"(\d)", "threshold": 5}, "outside [0.0, 1.0]"),
    ({"kind": "regex", "pattern": r"(\d)", "threshold": 1, "min": 2, "max": 1}, "min < max"),
    ({"kind": "words", "success": ["yes"], "failure": ["Yes"]}, "both success and failure"),
    ({"kind": "words", "success": ["very yes"]}, "one word"),
    ({"kind": "words", "success": []}, "at least 1"),
    ({"kind": "score"}, "parse"),
    ({"kind": "words", "success": [True], "failure": [False]}, "quote the words"),  # YAML yes/no
])
def test_bad_parse_options_are_config_errors(tmp_path, parse, problem):
    with pytest.raises(JudgeError, match=None) as info:
        parse_spec(spec(write(tmp_path, "{response}"), parse=parse))
    assert problem in str(info.value)


def test_text_mode_takes_no_system_message_or_chat_only_model_options(tmp_path):
    path = write(tmp_path, "{response}")
    with pytest.raises(JudgeError, match="'system' is for chat mode"):
        parse_spec(spec(path, mode="text", system="x"))
    with pytest.raises(JudgeError, match="model.system_prompt cannot apply"):
        parse_spec({**spec(path, mode="text"), "model": {**MODEL, "system_prompt": "x"}})


def test_text_mode_sends_the_rendered_template_as_the_only_message(tmp_path):
    chat = replies("No")
    judge = judge_with(chat, write(tmp_path, "[INST] {goal} :: {response} [/INST]"), mode="text")
    asyncio.run(judge.evaluate("g", "p", "r"))
    assert [wire(call) for call in chat.calls] == [[{"role": "user", "content": "[INST] g :: r [/INST]"}]]


def test_check_and_render_helpers():
    check_template("{{x}} {response}", "t")
    assert render("{{{goal}}}", {"goal": "g"}) == "{g}"


@pytest.mark.parametrize("name", builtin_templates())
def test_shipped_templates_are_valid_and_usable_by_name(name):
    assert (BUILTIN_DIR / f"{name}.txt").is_file()
    parse = ({"kind": "words", "success": ["unsafe"], "failure": ["safe"]}
             if name == "llama-guard" else {"kind": "words"})
    chat = replies("unsafe" if name == "llama-guard" else "Yes")
    judge = judge_with(chat, f"builtin:{name}", mode="text", parse=parse)
    verdict = asyncio.run(judge.evaluate("THE-GOAL", "THE-PROMPT", "THE-RESPONSE",
                                         context="THE-CONTEXT"))
    assert verdict.success is True
    sent = chat.calls[0][0].text
    assert sent.startswith("[INST]") and sent.endswith("[/INST]") and "THE-RESPONSE" in sent
    assert "{" not in sent  # every placeholder filled


def test_builtin_names_are_checked(tmp_path):
    with pytest.raises(JudgeError, match="no built-in judge template 'harmbench'"):
        parse_spec(spec("builtin:harmbench"))


def test_listed_with_its_options():
    from judges import list_judges

    (info,) = [i for i in list_judges() if i.name == "template"]
    assert info.needs_model and {"template", "mode", "system", "parse"} <= set(info.options)


def test_takes_context_only_when_the_template_has_a_context_slot(tmp_path):
    with_slot = judge_with(replies("yes"), write(tmp_path, "{context}|{response}", "a.txt"))
    without = judge_with(replies("yes"), write(tmp_path, "{goal}|{response}", "b.txt"))
    assert with_slot.takes_context is True and without.takes_context is False
    assert build_judge("refusal").takes_context is False
