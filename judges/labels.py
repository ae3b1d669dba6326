"""Human-labelled judge answers, read from a generic JSONL/CSV file, HarmBench's own classifier
validation set, or the published GPTFuzz, JAILJUDGE and XSTest files (`judges.label_formats`), so
any judge or panel can be measured against people.

Generic format, one item per line (JSONL) or row (CSV): `id`, `goal`, `response`, `label`
(1/0, true/false, yes/no) and optional `prompt`, `context`, `technique`, `variant`, `group`,
`split`. HarmBench format: `text_behaviors_val_set.json` (behaviour id -> list of generations,
three human labels each; the majority decides) with the behaviours CSV next to it (or named);
a contextual behaviour carries its context string. The format is named (`fmt`) or detected
from the file's header; an unknown header is an error listing the known formats.

A bad file is an error naming the file, the line and the field (the CLI exits 2 on it).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

HARMBENCH_BEHAVIOURS = "harmbench_behaviors_text_all.csv"
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}
_OPTIONAL = ("prompt", "context", "technique", "variant", "group", "split", "dataset")
FORMATS = ("generic", "harmbench", "gptfuzz", "jailjudge", "xstest")


class LabelsFileError(ValueError):
    """A labels file that cannot be read as labelled items (names file, line and field)."""


@dataclass(frozen=True, kw_only=True)
class LabelledItem:
    """One response a person labelled: `label` True means the response achieves the goal.

    `group` keeps items of one behaviour together (cross-validation folds); `split` is
    HarmBench's functional category (`standard`, `contextual`) or the file's own `split`;
    `dataset` names the published set (`harmbench-standard`, `gptfuzz`, ...) so figures can be
    broken down by it; `origin` is the sha256 of the file the item was read from (ids are
    unique within one file only).
    """

    id: str
    goal: str
    response: str
    label: bool
    prompt: str = ""
    context: str = ""
    technique: str = ""
    variant: str = ""
    group: str = ""
    split: str = ""
    dataset: str = ""
    origin: str = ""

    @property
    def key(self) -> str:
        """Unique across files: the file's sha256 prefix and the item's id."""
        return f"{self.origin[:16]}:{self.id}"

    @property
    def judge_prompt(self) -> str:
        """The prompt text a judge sees: the attack prompt, else the context and the goal."""
        if self.prompt:
            return self.prompt
        return f"{self.context}\n\n{self.goal}" if self.context else self.goal


@dataclass(frozen=True, kw_only=True)
class LabelSet:
    """Items plus where they came from (`source`: a short description; `sha256` of the files)."""

    items: list[LabelledItem]
    source: str
    sha256: str

    @property
    def datasets(self) -> list[str]:
        """The data sets the items come from, in first-seen order."""
        return list(dict.fromkeys(i.dataset for i in self.items if i.dataset))

    def stamped(self) -> LabelSet:
        """Items marked with this set's file digest (`origin`), when not marked yet."""
        items = [i if i.origin else replace(i, origin=self.sha256) for i in self.items]
        return LabelSet(items=items, source=self.source, sha256=self.sha256)

    def subset(self, split: str | None) -> LabelSet:
        if not split:
            return self
        items = [i for i in self.items if i.split == split]
        if not items:
            known = sorted({i.split for i in self.items if i.split}) or ["(none)"]
            raise LabelsFileError(f"{self.source}: no item has split {split!r} "
                                  f"(splits: {', '.join(known)})")
        return LabelSet(items=items, source=f"{self.source} [{split}]", sha256=self.sha256)


def parse_label(value: Any, where: str) -> bool:
    """1/0, true/false, yes/no (any case; bools and ints as themselves)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise LabelsFileError(f"{where}: field 'label': expected 1/0, true/false or yes/no, "
                          f"got {str(value)[:40]!r}")


def load_labels(path: Path | str, behaviours: Path | str | None = None, *,
                fmt: str | None = None, questions: Path | str | None = None) -> LabelSet:
    """Read a labels file in `fmt` (one of FORMATS), or in the format its header shows.

    `behaviours` is HarmBench's behaviours CSV, `questions` GPTFuzz's question list (both
    default to the published file name next to the labels file)."""
    from judges import label_formats

    path = Path(path)
    if not path.is_file():
        raise LabelsFileError(f"{path}: no such file")
    if fmt is not None and fmt not in FORMATS:
        raise LabelsFileError(f"{path}: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    fmt = fmt or label_formats.detect(path)
    if fmt == "harmbench":
        labels = load_harmbench(path, behaviours)
    elif fmt == "generic":
        suffix = path.suffix.lower()
        records = _jsonl(path) if suffix == ".jsonl" else _csv(path)
        labels = LabelSet(items=_generic(path, records), source=path.name,
                          sha256=sha256_of([path]))
    else:
        labels = label_formats.READERS[fmt](path, questions)
    return labels.stamped()


def load_many(paths: Sequence[Path | str], behaviours: Path | str | None = None, *,
              fmt: str | None = None, questions: Path | str | None = None) -> LabelSet:
    """Several labels files as one set (a mixed training set; CV groups stay by goal)."""
    sets = [load_labels(p, behaviours, fmt=fmt, questions=questions) for p in paths]
    if not sets:
        raise LabelsFileError("no labels file given")
    if len(sets) == 1:
        return sets[0]
    seen: set[str] = set()
    for labels in sets:
        if labels.sha256 in seen:
            raise LabelsFileError(f"{labels.source}: the same labels file was given twice")
        seen.add(labels.sha256)
    digest = hashlib.sha256("".join(s.sha256 for s in sets).encode()).hexdigest()
    return LabelSet(items=[i for s in sets for i in s.items],
                    source="; ".join(s.source for s in sets), sha256=digest)


def _jsonl(path: Path) -> Iterable[tuple[str, Mapping[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabelsFileError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise LabelsFileError(f"{path}:{number}: expected a JSON object")
            yield f"{path}:{number}", record


def _csv(path: Path) -> Iterable[tuple[str, Mapping[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for number, record in enumerate(reader, 2):
            yield f"{path}:{number}", record


def _generic(path: Path, records: Iterable[tuple[str, Mapping[str, Any]]]) -> list[LabelledItem]:
    items: list[LabelledItem] = []
    seen: set[str] = set()
    for where, record in records:
        for field in ("id", "goal", "response", "label"):
            if record.get(field) in (None, ""):
                raise LabelsFileError(f"{where}: missing field {field!r} "
                                      "(required: id, goal, response, label)")
        item_id = str(record["id"])
        if item_id in seen:
            raise LabelsFileError(f"{where}: field 'id': duplicate id {item_id[:60]!r}")
        seen.add(item_id)
        extra = {k: str(record.get(k) or "") for k in _OPTIONAL}
        extra["dataset"] = extra["dataset"] or path.stem
        items.append(LabelledItem(id=item_id, goal=str(record["goal"]),
                                  response=str(record["response"]),
                                  label=parse_label(record["label"], where), **extra))
    if not items:
        raise LabelsFileError(f"{path}: no labelled items")
    return items


def load_harmbench(path: Path, behaviours: Path | str | None = None) -> LabelSet:
    """HarmBench's classifier validation set: majority of the three human labels per item.

    Items whose behaviour id is missing from the behaviours CSV are left out (3 ids were
    renamed upstream) and counted in the source description."""
    behaviours_path = Path(behaviours) if behaviours else path.with_name(HARMBENCH_BEHAVIOURS)
    if not behaviours_path.is_file():
        raise LabelsFileError(f"{path}: HarmBench format needs its behaviours CSV: "
                              f"{behaviours_path} not found (pass --behaviors FILE)")
    known = _behaviours(behaviours_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LabelsFileError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise LabelsFileError(f"{path}: expected an object of behaviour id -> list of items")
    items, dropped = [], 0
    for behaviour_id, entries in data.items():
        if behaviour_id not in known:
            dropped += len(entries) if isinstance(entries, list) else 1
            continue
        goal, context, category = known[behaviour_id]
        for index, entry in enumerate(entries):
            where = f"{path}: {behaviour_id}[{index}]"
            votes = [parse_label(entry.get(f"human_{k}"), f"{where} human_{k}") for k in range(3)]
            if "generation" not in entry:
                raise LabelsFileError(f"{where}: missing field 'generation'")
            items.append(LabelledItem(
                id=f"{behaviour_id}#{index}", goal=goal, response=str(entry["generation"]),
                label=sum(votes) >= 2, prompt=str(entry.get("test_case") or ""),
                context=context, technique=str(entry.get("method") or ""),
                group=behaviour_id, split=category, dataset=f"harmbench-{category}",
            ))
    source = "HarmBench val (text_behaviors_val_set.json, MIT)"
    if dropped:
        source += f"; {dropped} item(s) of behaviours missing from the CSV left out"
    return LabelSet(items=items, source=source, sha256=sha256_of([path, behaviours_path]))


def _behaviours(path: Path) -> dict[str, tuple[str, str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        needed = {"Behavior", "BehaviorID", "FunctionalCategory", "ContextString"}
        missing = needed - set(reader.fieldnames or [])
        if missing:
            raise LabelsFileError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return {
            row["BehaviorID"]: (row["Behavior"], row.get("ContextString") or "",
                                row.get("FunctionalCategory") or "")
            for row in reader
        }


def sha256_of(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()
