"""Goal-set loaders for CSV/TSV, JSONL and YAML files, with column mapping.

Every loader turns a file into `(line, record)` pairs; one shared step then maps columns onto
`Goal` fields and validates, so all formats fail the same way, with file, line and field named.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from goals.model import Goal, GoalFileError

#: Goal fields that can be mapped from a column, and the column used when none is given.
_CONVENTIONAL = {"id": "id", "category": "category", "target": "target", "context": "context"}
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".yaml": "yaml",
    ".yml": "yaml",
}

Record = dict[str, Any]


class LinedRecord(dict[str, Any]):
    """A record whose fields sit on lines of their own (a multi-line YAML mapping): `lines`
    maps each key to its 1-based line, so an error points at the field, not the item."""

    lines: dict[str, int]


def field_line(record: Record, field: str | None, line: int) -> int:
    """The line of `field` in `record` when known, else the record's `line`."""
    lines = getattr(record, "lines", None)
    return lines.get(field, line) if lines and field is not None else line

#: Default cap on a goal's text (characters). Real behaviours are a few hundred characters; a
#: multi-megabyte cell is a wrong column or a broken export, and would be sent to the target
#: in every attack prompt. Raise it with `goals.max_goal_chars` / `--max-goal-chars`.
DEFAULT_MAX_GOAL_CHARS = 20_000
#: Control characters a goal may not hold (tab, newline and carriage return are text). NUL in
#: particular cannot be stored in PostgreSQL text columns.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_NAMES = {"\x00": "NUL byte", "\x1b": "escape character", "\x7f": "DEL character"}


@dataclass(frozen=True, kw_only=True)
class GoalFileSpec:
    """Where a goal set lives and which columns hold which `Goal` fields.

    `text_field` is required in every record. A field given explicitly (`id_field`, ...) must exist
    as a column; when left None, a column with the conventional name (`id`, `category`, `target`,
    `context` — the text a contextual behaviour refers to) is used if present. Column names match
    exactly, else case-insensitively (JBB's `Goal`).
    `source_field` maps a provenance column; without it `Goal.source` is `set_name`.
    `set_name` defaults to the file stem and prefixes derived ids: `<set_name>:<index>`.
    """

    path: str | Path
    text_field: str = "goal"
    id_field: str | None = None
    category_field: str | None = None
    target_field: str | None = None
    source_field: str | None = None
    context_field: str | None = None
    set_name: str | None = None
    format: str | None = None  # "csv" | "tsv" | "jsonl" | "yaml"; default: from the extension
    max_text_chars: int | None = None  # a longer goal text is an error (None: no limit)

    def with_mapping(self, mapping: Mapping[str, str | None]) -> GoalFileSpec:
        """Apply a `{"text": "prompt", "id": "behavior_id", ...}` mapping (CLI/config style)."""
        allowed = {"text", "id", "category", "target", "source", "context"}
        unknown = sorted(set(mapping) - allowed)
        if unknown:
            raise GoalFileError(
                self.path,
                f"unknown mapping key(s) {unknown}; allowed: {sorted(allowed)}",
                field=unknown[0],
            )
        changes: dict[str, Any] = {f"{key}_field": value for key, value in mapping.items()}
        return replace(self, **changes)


def load_goal_file(spec: GoalFileSpec) -> list[Goal]:
    """Load and validate one goal file described by `spec`."""
    path = Path(spec.path)
    fmt = spec.format or _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise GoalFileError(
            path,
            f"unknown extension {path.suffix or '(none)'!r}; "
            f"use one of {sorted(_FORMATS)} or set the format explicitly",
        )
    if fmt not in set(_FORMATS.values()):
        known = sorted(set(_FORMATS.values()))
        raise GoalFileError(path, f"unknown format {fmt!r}; use one of {known}")
    if not path.is_file():
        raise GoalFileError(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GoalFileError(path, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    return records_to_goals(read_records(path, text, fmt, spec), spec)


def read_records(
    path: str | Path, text: str, fmt: str, spec: GoalFileSpec
) -> Iterator[tuple[int, Record | str]]:
    """`(line, record)` pairs of a CSV/TSV/JSONL/YAML text (also used for other record files,
    e.g. many-shot dialogues); `spec.text_field` must be a CSV header column."""
    if fmt in ("csv", "tsv"):
        return read_csv_text(path, text, spec, delimiter="\t" if fmt == "tsv" else ",")
    return _read_jsonl(path, text) if fmt == "jsonl" else _read_yaml(path, text)


def records_to_goals(
    records: Iterable[tuple[int, Record | str]], spec: GoalFileSpec
) -> list[Goal]:
    """Map `(line, record)` pairs onto goals; shared by every format (and by builtin sets).

    A record is a mapping of column -> value, or a plain string (the goal text, YAML/JSONL only).
    """
    path = str(spec.path)
    set_name = spec.set_name or Path(spec.path).stem
    goals: list[Goal] = []
    seen_ids: dict[str, int] = {}
    for line, record in records:
        index = len(goals)
        if isinstance(record, str):
            if spec.id_field is not None:
                raise GoalFileError(
                    path, "a plain-string goal has no id; write it as a mapping",
                    line=line, field=spec.id_field,
                )
            record = {spec.text_field: record}
        columns = _resolve_columns(spec, list(record), line)
        text = _string(record, columns["text"], line, path, required=True)
        assert text is not None
        if spec.max_text_chars is not None and len(text) > spec.max_text_chars:
            raise GoalFileError(
                path, f"goal text is {len(text):,} characters, over the limit of "
                f"{spec.max_text_chars:,} (goals.max_goal_chars / --max-goal-chars)",
                line=field_line(record, columns["text"], line), field=columns["text"],
            )
        raw_id = _string(record, columns["id"], line, path, required=spec.id_field is not None)
        goal_id = raw_id if raw_id is not None else f"{set_name}:{index}"
        if goal_id in seen_ids:
            raise GoalFileError(
                path,
                f"duplicate id {goal_id!r} (first used on line {seen_ids[goal_id]})",
                line=field_line(record, columns["id"], line),
                field=columns["id"] or "id",
            )
        seen_ids[goal_id] = line
        source = _string(record, columns["source"], line, path, required=False)
        goals.append(
            Goal(
                id=goal_id,
                index=index,
                text=text,
                category=_string(record, columns["category"], line, path, required=False),
                target=_string(record, columns["target"], line, path, required=False),
                source=source if source is not None else set_name,
                context=_string(record, columns["context"], line, path, required=False),
            )
        )
    if not goals:
        raise GoalFileError(path, "no goals found (the file has no records)")
    return goals


def _resolve_columns(spec: GoalFileSpec, keys: list[str], line: int) -> dict[str, str | None]:
    """Turn the spec into the record's actual column names.

    Resolved per record because JSONL/YAML records may differ in keys: an explicitly mapped
    column must be in every record; a conventional one (`id`, `category`, `target`) is optional.
    """
    explicit = {
        "text": spec.text_field,
        "id": spec.id_field,
        "category": spec.category_field,
        "target": spec.target_field,
        "source": spec.source_field,
        "context": spec.context_field,
    }
    resolved: dict[str, str | None] = {}
    for goal_field, wanted in explicit.items():
        if wanted is not None:
            found = _match_column(keys, wanted)
            if found is None:
                raise GoalFileError(
                    spec.path,
                    f"missing column {wanted!r} (mapped to {goal_field}); found {keys}",
                    line=line,
                    field=wanted,
                )
            resolved[goal_field] = found
        elif goal_field in _CONVENTIONAL:
            resolved[goal_field] = _match_column(keys, _CONVENTIONAL[goal_field])
        else:
            resolved[goal_field] = None
    return resolved


def _match_column(keys: list[str], wanted: str) -> str | None:
    if wanted in keys:
        return wanted
    folded = [key for key in keys if isinstance(key, str) and key.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def control_character(value: str) -> str | None:
    """What is wrong with text that must be plain (NUL, escape, other C0 controls), or None."""
    control = _CONTROL.search(value)
    if control is None:
        return None
    char = control.group()
    name = _CONTROL_NAMES.get(char, "control character")
    return f"{name} (U+{ord(char):04X}) at character {control.start() + 1}"


def _string(
    record: Record, column: str | None, line: int, path: str, *, required: bool
) -> str | None:
    """Read one cell as a stripped string; empty optional cells become None."""
    if column is None:
        return None
    line = field_line(record, column, line)
    if column not in record:
        if required:
            raise GoalFileError(path, "missing field in this record", line=line, field=column)
        return None
    value = record[column]
    if value is None:
        value = ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise GoalFileError(
            path, f"expected a string, got {type(value).__name__}", line=line, field=column
        )
    problem = control_character(str(value))
    if problem is not None:
        raise GoalFileError(path, f"{problem}: goals must be plain text", line=line, field=column)
    text = str(value).strip()
    if not text:
        if required:
            raise GoalFileError(path, "empty value", line=line, field=column)
        return None
    return text


# -- format readers: yield (1-based line, record) -------------------------------------------------


def read_csv_text(
    path: str | Path, text: str, spec: GoalFileSpec, delimiter: str = ","
) -> Iterator[tuple[int, Record | str]]:
    """Parse CSV/TSV text; `path` is only used in error messages (builtin sets have none)."""
    rows = csv.reader(text.splitlines(keepends=True), delimiter=delimiter, strict=True)
    try:
        header = next(rows, None)
        if header is None or not any(cell.strip() for cell in header):
            raise GoalFileError(path, "empty file: expected a header row", line=1)
        header = [cell.strip() for cell in header]
        duplicated = sorted({name for name in header if header.count(name) > 1 and name})
        if duplicated:
            raise GoalFileError(path, "duplicate column in header", line=1, field=duplicated[0])
        _resolve_columns(spec, header, 1)  # a missing mapped column is a header problem: line 1
        start = rows.line_num + 1
        for row in rows:
            line, start = start, rows.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise GoalFileError(
                    path, f"expected {len(header)} columns, found {len(row)}", line=line
                )
            yield line, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise GoalFileError(path, f"malformed CSV: {exc}", line=rows.line_num) from exc


def _read_jsonl(path: str | Path, text: str) -> Iterator[tuple[int, Record | str]]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoalFileError(
                path, f"bad JSON: {exc.msg} (column {exc.colno})", line=line_no
            ) from exc
        yield line_no, _as_record(path, value, line_no)


def _read_yaml(path: str | Path, text: str) -> Iterator[tuple[int, Record | str]]:
    """A YAML file is a list of goals, or a mapping with a `goals:` list.

    Items are mappings, or plain strings (the goal text). Line numbers come from the parser's
    node marks, so errors point at the item that is wrong.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise GoalFileError(
                path, f"bad YAML: {getattr(exc, 'problem', None) or exc}",
                line=mark.line + 1 if mark else None,
            ) from exc
        if root is None:
            raise GoalFileError(path, "no goals found (the file is empty)")
        items: yaml.Node | None = root
        if isinstance(root, yaml.MappingNode):
            items = next(
                (value for key, value in root.value if getattr(key, "value", None) == "goals"), None
            )
            if items is None:
                raise GoalFileError(
                    path, "a YAML mapping must have a 'goals:' list", line=root.start_mark.line + 1,
                    field="goals",
                )
        if not isinstance(items, yaml.SequenceNode):
            line = items.start_mark.line + 1 if items is not None else None
            raise GoalFileError(path, "expected a list of goals", line=line)
        for node in items.value:
            line = node.start_mark.line + 1
            record = _as_record(path, loader.construct_object(node, deep=True), line)
            if isinstance(record, LinedRecord) and isinstance(node, yaml.MappingNode):
                record.lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value
                                if isinstance(k, yaml.ScalarNode)}
            yield line, record
    finally:
        loader.dispose()


def _as_record(path: str | Path, value: Any, line: int) -> Record | str:
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise GoalFileError(
            path, f"expected an object or a string, got {type(value).__name__}", line=line
        )
    return LinedRecord((str(key), item) for key, item in value.items())


def spec_field_names() -> list[str]:
    """Names accepted by `GoalFileSpec` (for CLI help)."""
    return [f.name for f in fields(GoalFileSpec)]
