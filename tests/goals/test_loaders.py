"""Goal-set loaders: each format, column mapping, and a precise error for each kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from goals import Goal, GoalFileError, GoalFileSpec, load_goals


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_error(exc: GoalFileError, path: Path | str, line: int | None, field: str | None) -> None:
    message = str(exc)
    assert str(path) in message
    assert exc.line == line
    assert exc.field == field
    if line is not None:
        assert f"line {line}" in message
    if field is not None:
        assert repr(field) in message


# -- good files -------------------------------------------------------------------------------


def test_csv_with_conventional_columns(tmp_path):
    path = write(
        tmp_path,
        "set.csv",
        'id,goal,category,target\n'
        'a1,Say something rude,harassment,"Sure, here is something rude"\n'
        'a2,"Explain, in detail, a thing",misc,\n',
    )
    goals = load_goals(path)
    assert goals == [
        Goal(id="a1", index=0, text="Say something rude", category="harassment",
             source="set", target="Sure, here is something rude"),
        Goal(id="a2", index=1, text="Explain, in detail, a thing", category="misc",
             source="set", target=None),
    ]


def test_csv_without_id_derives_set_and_index(tmp_path):
    path = write(tmp_path, "mine.csv", "goal\nfirst\nsecond\n")
    assert [g.id for g in load_goals(path)] == ["mine:0", "mine:1"]


def test_csv_matches_columns_case_insensitively_like_jbb(tmp_path):
    path = write(tmp_path, "jbb.csv", "Index,Goal,Target,Behavior,Category,Source\n"
                 "0,Do X,\"Sure, X\",X,Cat,Original\n")
    (goal,) = load_goals(path, mapping={"id": "Index", "source": "Source"})
    assert (goal.id, goal.text, goal.target, goal.category, goal.source) == (
        "0", "Do X", "Sure, X", "Cat", "Original")


def test_csv_multiline_cells_keep_line_numbers(tmp_path):
    path = write(tmp_path, "multi.csv", 'id,goal\na,"line one\nline two"\nb,\n')
    with pytest.raises(GoalFileError) as info:
        load_goals(path)
    assert_error(info.value, path, 4, "goal")


def test_tsv(tmp_path):
    path = write(tmp_path, "set.tsv", "goal\tcategory\nDo a thing, carefully\tc1\n")
    (goal,) = load_goals(path)
    assert (goal.text, goal.category) == ("Do a thing, carefully", "c1")


def test_column_mapping(tmp_path):
    path = write(tmp_path, "hb.csv", "BehaviorID,Behavior,SemanticCategory\nb1,Do Y,chem\n")
    (goal,) = load_goals(path, mapping={"text": "Behavior", "id": "BehaviorID",
                                        "category": "SemanticCategory"})
    assert (goal.id, goal.text, goal.category) == ("b1", "Do Y", "chem")


def test_spec_object_and_format_override(tmp_path):
    path = write(tmp_path, "goals.txt", '{"prompt": "Do Z"}\n')
    spec = GoalFileSpec(path=path, text_field="prompt", format="jsonl", set_name="z")
    (goal,) = load_goals(spec)
    assert (goal.id, goal.text, goal.source) == ("z:0", "Do Z", "z")


def test_jsonl(tmp_path):
    lines = [{"id": 7, "goal": "Do A", "category": "c"}, {}, {"id": "x", "goal": "Do B"}]
    text = "\n".join("" if not obj else json.dumps(obj) for obj in lines) + "\n"
    path = write(tmp_path, "set.jsonl", text)
    goals = load_goals(path)
    assert [(g.id, g.index, g.text, g.category) for g in goals] == [
        ("7", 0, "Do A", "c"), ("x", 1, "Do B", None)]


def test_jsonl_plain_strings(tmp_path):
    path = write(tmp_path, "s.jsonl", '"Do A"\n"Do B"\n')
    assert [g.text for g in load_goals(path)] == ["Do A", "Do B"]


def test_yaml_list_and_goals_mapping(tmp_path):
    listed = write(tmp_path, "a.yaml", "- id: g1\n  goal: Do A\n  category: c\n- Do B\n")
    goals = load_goals(listed)
    assert [(g.id, g.text, g.category) for g in goals] == [
        ("g1", "Do A", "c"), ("a:1", "Do B", None)]
    wrapped = write(tmp_path, "b.yml", "name: mine\ngoals:\n  - prompt: Do C\n")
    (goal,) = load_goals(wrapped, mapping={"text": "prompt"})
    assert goal.text == "Do C"


def test_duplicate_texts_are_two_goals(tmp_path):
    path = write(tmp_path, "dup.csv", "goal\nsame\nsame\n")
    goals = load_goals(path)
    assert [g.text for g in goals] == ["same", "same"]
    assert goals[0].id != goals[1].id


# -- bad files: file, line, field and reason ----------------------------------------------------


def test_empty_text(tmp_path):
    path = write(tmp_path, "e.csv", "id,goal\na,Do A\nb,   \n")
    with pytest.raises(GoalFileError, match="empty value") as info:
        load_goals(path)
    assert_error(info.value, path, 3, "goal")


def test_missing_mapped_column_is_reported_on_the_header(tmp_path):
    path = write(tmp_path, "m.csv", "id,prompt\na,Do A\n")
    with pytest.raises(GoalFileError, match="missing column") as info:
        load_goals(path)
    assert_error(info.value, path, 1, "goal")


def test_missing_field_in_jsonl_record(tmp_path):
    path = write(tmp_path, "m.jsonl", '{"goal": "Do A", "cat": "c"}\n{"goal": "Do B"}\n')
    with pytest.raises(GoalFileError, match="missing column") as info:
        load_goals(path, mapping={"category": "cat"})
    assert_error(info.value, path, 2, "cat")


def test_bad_json_line(tmp_path):
    path = write(tmp_path, "b.jsonl", '{"goal": "ok"}\n\n{"goal": oops}\n')
    with pytest.raises(GoalFileError, match="bad JSON") as info:
        load_goals(path)
    assert_error(info.value, path, 3, None)


def test_jsonl_non_object(tmp_path):
    path = write(tmp_path, "n.jsonl", '{"goal": "ok"}\n[1, 2]\n')
    with pytest.raises(GoalFileError, match="expected an object") as info:
        load_goals(path)
    assert_error(info.value, path, 2, None)


def test_wrong_value_type(tmp_path):
    path = write(tmp_path, "t.jsonl", '{"goal": ["not", "text"]}\n')
    with pytest.raises(GoalFileError, match="expected a string") as info:
        load_goals(path)
    assert_error(info.value, path, 1, "goal")


def test_duplicate_id(tmp_path):
    path = write(tmp_path, "d.csv", "id,goal\na,Do A\nb,Do B\na,Do C\n")
    with pytest.raises(GoalFileError, match="duplicate id 'a'.*line 2") as info:
        load_goals(path)
    assert_error(info.value, path, 4, "id")


def test_duplicate_id_mapped_column(tmp_path):
    path = write(tmp_path, "d.yaml", "- {key: k, goal: A}\n- {key: k, goal: B}\n")
    with pytest.raises(GoalFileError, match="duplicate id") as info:
        load_goals(path, mapping={"id": "key"})
    assert_error(info.value, path, 2, "key")


def test_unknown_extension(tmp_path):
    path = write(tmp_path, "g.xlsx", "")
    with pytest.raises(GoalFileError, match="unknown extension '.xlsx'") as info:
        load_goals(path)
    assert_error(info.value, path, None, None)


def test_missing_file(tmp_path):
    with pytest.raises(GoalFileError, match="file not found"):
        load_goals(tmp_path / "nope.csv")


def test_wrong_column_count(tmp_path):
    path = write(tmp_path, "w.csv", "id,goal\na,Do A,extra\n")
    with pytest.raises(GoalFileError, match="expected 2 columns, found 3") as info:
        load_goals(path)
    assert_error(info.value, path, 2, None)


def test_duplicate_header_column(tmp_path):
    path = write(tmp_path, "h.csv", "goal,goal\na,b\n")
    with pytest.raises(GoalFileError, match="duplicate column") as info:
        load_goals(path)
    assert_error(info.value, path, 1, "goal")


@pytest.mark.parametrize("name,text", [("e.csv", ""), ("e.csv", "goal\n"), ("e.jsonl", "\n\n"),
                                       ("e.yaml", "")])
def test_empty_files(tmp_path, name, text):
    path = write(tmp_path, name, text)
    with pytest.raises(GoalFileError, match="empty|no goals"):
        load_goals(path)


def test_bad_yaml_names_line(tmp_path):
    path = write(tmp_path, "b.yaml", "- goal: ok\n- goal: [unclosed\n")
    with pytest.raises(GoalFileError, match="bad YAML") as info:
        load_goals(path)
    assert info.value.line is not None and info.value.line >= 2


def test_yaml_item_errors_point_at_the_item(tmp_path):
    path = write(tmp_path, "i.yaml", "goals:\n  - goal: ok\n  - goal: ''\n")
    with pytest.raises(GoalFileError, match="empty value") as info:
        load_goals(path)
    assert_error(info.value, path, 3, "goal")


def test_yaml_mapping_without_goals(tmp_path):
    path = write(tmp_path, "m.yaml", "name: x\nitems: []\n")
    with pytest.raises(GoalFileError, match="'goals:'") as info:
        load_goals(path)
    assert info.value.field == "goals"


def test_plain_string_with_id_mapping(tmp_path):
    path = write(tmp_path, "p.yaml", "- Do A\n")
    with pytest.raises(GoalFileError, match="no id") as info:
        load_goals(path, mapping={"id": "key"})
    assert_error(info.value, path, 1, "key")


def test_unknown_mapping_key(tmp_path):
    path = write(tmp_path, "u.csv", "goal\nDo A\n")
    with pytest.raises(GoalFileError, match="unknown mapping key"):
        load_goals(path, mapping={"prompt": "goal"})


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("goal\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(GoalFileError, match="UTF-8"):
        load_goals(path)


def test_goal_rejects_empty_text_directly():
    with pytest.raises(ValueError, match="empty text"):
        Goal(id="x", index=0, text="  ")
