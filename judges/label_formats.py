"""Readers for published human-labelled judge data, and detection of a file's format by its
header (a file that matches no format is an error listing them: never a silent guess).

- `gptfuzz`: GPTFuzz's `train.csv` / `evaluate.csv` (`question` = index into
  `question_list.csv` next to it, `Response`, `label`; 1 = jailbroken). Items of one question
  share a group, in both files, so grouped folds never split a question.
- `jailjudge`: JAILJUDGE mini (`question,answer,label,hazard_cate_llamaguard3,
  prompt_complexity_cate,language`); items of one question share a group.
- `xstest`: XSTest's model completions (`id,type,prompt,completion,...,final_label`). The label
  is *the model complied* (`1_full_compliance`); a full or partial refusal is not. That is the
  refusal judge's own sense of "success" (no refusal), so the file measures a refusal detector
  directly. For a harm judge, compliance only means harm on the unsafe `contrast_*` prompts:
  their split is `contrast`, the safe prompts' split is `safe` (`--split contrast`).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from judges.labels import (
    FORMATS,
    LabelledItem,
    LabelSet,
    LabelsFileError,
    parse_label,
    sha256_of,
)

GPTFUZZ_QUESTIONS = "question_list.csv"
XSTEST_LABELS = ("1_full_compliance", "2_full_refusal", "3_partial_refusal")
_HEADERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("generic", frozenset({"id", "goal", "response", "label"})),
    ("gptfuzz", frozenset({"question", "Response", "label"})),
    ("jailjudge", frozenset({"question", "answer", "label"})),
    ("xstest", frozenset({"id", "type", "prompt", "completion", "final_label"})),
)
KNOWN = ("generic (JSONL or CSV: id, goal, response, label), harmbench "
         "(text_behaviors_val_set.json + its behaviours CSV), gptfuzz (question, Response, "
         "label + question_list.csv), jailjudge (question, answer, label, ...), xstest (id, "
         "type, prompt, completion, ..., final_label)")


def detect(path: Path) -> str:
    """The format a labels file's header shows, else a LabelsFileError listing the formats."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "harmbench"
    with path.open(encoding="utf-8", newline="") as handle:
        first = handle.readline()
    if suffix == ".jsonl" or first.lstrip().startswith("{"):
        try:
            keys = set(json.loads(first)) if first.strip() else set()
        except (json.JSONDecodeError, TypeError):
            keys = set()
        if suffix == ".jsonl":  # the generic reader names the line and field of a bad record
            return "generic"
        columns = keys
    else:
        columns = set(next(csv.reader([first]), []))
    for name, needed in _HEADERS:
        if needed <= columns:
            return name
    shown = ", ".join(sorted(columns))[:200] or "(empty)"
    raise LabelsFileError(f"{path}: header ({shown}) matches no known labels format; known: "
                          f"{KNOWN}. Name one with --format {{{'|'.join(FORMATS)}}}")


def _rows(path: Path, needed: frozenset[str], fmt: str) -> list[tuple[int, dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = needed - set(reader.fieldnames or [])
        if missing:
            raise LabelsFileError(f"{path}: not the {fmt} format: missing column(s) "
                                  f"{', '.join(sorted(missing))}")
        return [(number, row) for number, row in enumerate(reader, 2)]


def _text(path: Path, number: int, row: dict[str, str], field: str) -> str:
    value = row.get(field)
    if value is None or not value.strip():
        raise LabelsFileError(f"{path}:{number}: missing field {field!r}")
    return value


def gptfuzz_questions(path: Path) -> dict[str, str]:
    """GPTFuzz's question list: index -> question."""
    if not path.is_file():
        raise LabelsFileError(f"{path}: GPTFuzz format needs its question list (index, text): "
                              "not found (pass --questions FILE)")
    rows = _rows(path, frozenset({"index", "text"}), "GPTFuzz question list")
    return {row["index"].strip(): _text(path, n, row, "text") for n, row in rows}


def load_gptfuzz(path: Path, questions: Path | str | None = None) -> LabelSet:
    """GPTFuzz's labelled responses; the goal is the question the row's index names."""
    questions_path = Path(questions) if questions else path.with_name(GPTFUZZ_QUESTIONS)
    known = gptfuzz_questions(questions_path)
    items = []
    for number, row in _rows(path, _HEADERS[1][1], "gptfuzz"):
        where = f"{path}:{number}"
        index = (row.get("question") or "").strip()
        if index not in known:
            raise LabelsFileError(f"{where}: field 'question': {index[:20]!r} is not an index "
                                  f"of {questions_path.name}")
        items.append(LabelledItem(
            id=f"{path.stem}:{number}", goal=known[index],
            response=_text(path, number, row, "Response"),
            label=parse_label(row.get("label"), where), group=f"gptfuzz:q{index}",
            split=path.stem, dataset="gptfuzz"))
    return _labelset(path, items, f"GPTFuzz {path.name} (MIT)", [path, questions_path])


def load_jailjudge(path: Path, questions: Path | str | None = None) -> LabelSet:
    """JAILJUDGE mini (JailbreakEval's sample): question, answer, label."""
    items = []
    for number, row in _rows(path, _HEADERS[2][1], "jailjudge"):
        where = f"{path}:{number}"
        question = _text(path, number, row, "question")
        group = hashlib.sha256(question.encode()).hexdigest()[:16]
        items.append(LabelledItem(
            id=f"jailjudge:{number}", goal=question,
            response=_text(path, number, row, "answer"),
            label=parse_label(row.get("label"), where), group=f"jailjudge:{group}",
            split=(row.get("language") or "").strip(), dataset="jailjudge-mini"))
    return _labelset(path, items, f"JAILJUDGE mini {path.name}", [path])


def load_xstest(path: Path, questions: Path | str | None = None) -> LabelSet:
    """XSTest completions; label: the model fully complied (see the module notes)."""
    model = path.stem.removeprefix("xstest_v2_completions_")
    items = []
    for number, row in _rows(path, _HEADERS[3][1], "xstest"):
        final = (row.get("final_label") or "").strip()
        if final not in XSTEST_LABELS:
            raise LabelsFileError(f"{path}:{number}: field 'final_label': expected one of "
                                  f"{', '.join(XSTEST_LABELS)}, got {final[:40]!r}")
        prompt_id = _text(path, number, row, "id").strip()
        kind = "contrast" if (row.get("type") or "").startswith("contrast_") else "safe"
        items.append(LabelledItem(
            id=f"{model}:{prompt_id}", goal=_text(path, number, row, "prompt"),
            response=_text(path, number, row, "completion"),
            label=final == XSTEST_LABELS[0], group=f"xstest:{prompt_id}", split=kind,
            dataset="xstest"))
    return _labelset(path, items, f"XSTest completions {path.name} (CC BY 4.0)", [path])


def _labelset(path: Path, items: list[LabelledItem], source: str,
              files: list[Path]) -> LabelSet:
    if not items:
        raise LabelsFileError(f"{path}: no labelled items")
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise LabelsFileError(f"{path}: duplicate item ids")
    return LabelSet(items=items, source=source, sha256=sha256_of(files))


Reader = Callable[[Path, "Path | str | None"], LabelSet]
READERS: dict[str, Reader] = {"gptfuzz": load_gptfuzz, "jailjudge": load_jailjudge,
                              "xstest": load_xstest}
