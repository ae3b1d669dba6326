"""Bad input never starts a run: exit 2 with file, line and field named, the store unchanged,
Prefect untouched — and size limits on goals and answers.

"Prefect untouched" is checked from the outside: the command runs with `PREFECT_API_URL` on a
closed port, so any flow it started would fail with exit 1, not 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.support.openai_server import OpenAIServer
from tracking import get_backend

runner = CliRunner()


class Outcome:
    """What a command printed and how it exited (in-process: a subprocess per case is slow)."""

    def __init__(self, code: int, output: str) -> None:
        self.returncode, self.output = code, output


def siegeflow(*args: str, db: str | None = None) -> Outcome:
    env = {"PREFECT_API_URL": "http://127.0.0.1:9/api", "COLUMNS": "300",
           "SIEGEFLOW_DB_URL": db}
    result = runner.invoke(app, list(args), env=env)
    return Outcome(result.exit_code, result.output)


def assert_bad_input(result: Outcome, *needles: str) -> None:
    out = result.output
    assert result.returncode == 2, out
    assert "Traceback" not in out, out
    for needle in needles:
        assert needle in out, (needle, out)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


def _untouched(db: Path) -> None:
    assert not db.exists(), "the store was created: a run was recorded before validation"


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scan.yaml"
    path.write_text("target: {model: openai/x, api_base: 'http://127.0.0.1:9/v1'}\n" + text)
    return str(path)


def test_unknown_attack_is_bad_input(sqlite_db: Path) -> None:
    result = siegeflow("run", "--target", "openai/x", "--attack", "nosuchattack",
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "attack", "nosuchattack", "known techniques")
    _untouched(sqlite_db)


def test_typo_in_attack_options_names_the_file_and_option(tmp_path: Path, sqlite_db: Path) -> None:
    config = _config(tmp_path, "attack: {name: templates, options: {variantz: [role_play]}}\n")
    result = siegeflow("run", "--config", config, db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, f"{config}:2", "attack", "variantz", "allowed options")
    _untouched(sqlite_db)


def test_typo_in_an_attack_option_flag_is_bad_input(sqlite_db: Path) -> None:
    result = siegeflow("run", "--target", "openai/x", "--attack", "templates",
                       "--attack-option", "variantz=1", db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "variantz")
    _untouched(sqlite_db)


def test_unknown_optimizer_and_optimizer_option_typo(tmp_path: Path, sqlite_db: Path) -> None:
    result = siegeflow("run", "--target", "openai/x", "--optimizer", "nosuchoptimizer",
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "optimizer", "nosuchoptimizer")
    config = _config(tmp_path, "optimizer: passthrough\noptimizer_options: {max_runz: 3}\n")
    result = siegeflow("run", "--config", config, db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, config, "optimizer_options", "max_runz")
    _untouched(sqlite_db)


def test_bad_judge_spec_is_bad_input(tmp_path: Path, sqlite_db: Path) -> None:
    result = siegeflow("run", "--target", "openai/x", "--judge", "nosuchjudge",
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "nosuchjudge")
    config = _config(tmp_path, "judges: {judges: [{name: refusal, keywordz: [x]}]}\n")
    result = siegeflow("run", "--config", config, db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, f"{config}:2", "keywordz")
    _untouched(sqlite_db)


@pytest.mark.parametrize("command", [["run", "--target", "openai/x"], ["runs", "list"],
                                     ["resume", "some-run"]])
def test_a_store_url_that_is_not_one_is_one_line_exit_2(command: list[str]) -> None:
    result = siegeflow(*command, "--db", "notaurl://foo")
    assert_bad_input(result, "notaurl://foo", "sqlite:///")
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 3


def test_a_bad_store_url_in_the_environment_is_named(tmp_path: Path) -> None:
    result = siegeflow("runs", "list", db="notaurl://foo")
    assert_bad_input(result, "SIEGEFLOW_DB_URL", "notaurl://foo")


def _nul_goals(tmp_path: Path) -> list[tuple[str, str]]:
    csv_file = tmp_path / "nul.csv"
    csv_file.write_bytes(b"goal,category\nfine goal,a\nbad\x00goal,b\n")
    jsonl = tmp_path / "nul.jsonl"
    jsonl.write_text(json.dumps({"goal": "fine"}) + "\n" + json.dumps({"goal": "x\u0000y"}) + "\n")
    return [(str(csv_file), "line 3"), (str(jsonl), "line 2")]


def test_nul_in_a_goal_is_bad_input_naming_file_line_and_field(
    tmp_path: Path, sqlite_db: Path
) -> None:
    for path, line in _nul_goals(tmp_path):
        result = siegeflow("run", "--target", "openai/x", "--goals", path,
                           db=f"sqlite:///{sqlite_db}")
        assert_bad_input(result, Path(path).name, line, "'goal'", "NUL")
    _untouched(sqlite_db)


@pytest.mark.postgres
def test_nul_in_a_goal_leaves_a_postgresql_store_unchanged(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """The reported failure: PostgreSQL rejected the NUL mid-run and kept two empty FAILED runs."""
    for path, line in _nul_goals(tmp_path):
        result = siegeflow("run", "--target", "openai/x", "--goals", path, "--db",
                           fresh_postgres_url)
        assert_bad_input(result, Path(path).name, line, "NUL")
    assert get_backend(fresh_postgres_url).list_runs() == []


def test_other_control_characters_in_a_goal_are_bad_input(tmp_path: Path, sqlite_db: Path) -> None:
    goals = tmp_path / "esc.jsonl"
    goals.write_text(json.dumps({"goal": "ok"}) + "\n" + json.dumps(
        {"goal": "fine", "category": "c\u001b[31m"}) + "\n")
    result = siegeflow("run", "--target", "openai/x", "--goals", str(goals),
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "esc.jsonl", "line 2", "'category'", "U+001B")
    _untouched(sqlite_db)


def test_a_goal_over_the_size_limit_is_bad_input_and_the_limit_is_a_flag(
    tmp_path: Path, sqlite_db: Path
) -> None:
    goals = tmp_path / "big.jsonl"
    goals.write_text(json.dumps({"goal": "short"}) + "\n" + json.dumps({"goal": "a" * 25_000}) + "\n")
    result = siegeflow("run", "--target", "openai/x", "--goals", str(goals),
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "big.jsonl", "line 2", "'goal'", "25,000", "--max-goal-chars")
    _untouched(sqlite_db)
    from cli.runner import RunFlags, build_settings

    settings = build_settings(RunFlags(target="openai/x", goals=str(goals),
                                       max_goal_chars=30_000))
    assert len(settings.goals.load()[1].text) == 25_000


@pytest.mark.e2e
def test_an_over_long_answer_is_stored_truncated_with_a_marker_and_counted(
    prefect_api_url: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path}/long.db"
    goals = tmp_path / "goals.csv"
    goals.write_text("goal\nwrite a long poem\nwrite a short poem\n")
    answer = "All work and no play. " * 50_000  # 1.1 MB

    def responder(request: dict) -> str:
        text = json.dumps(request["messages"])
        return answer if "long poem" in text else "A short poem."

    with OpenAIServer(responder=responder) as server:
        result = runner.invoke(app, [
            "run", "--target", "openai/siegeflow-test", "--api-base", server.base_url,
            "--goals", str(goals), "--db", db, "--max-response-chars", "5000",
        ], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    backend = get_backend(db)
    (run,) = backend.list_runs()
    by_len = sorted(backend.list_attempts(run.id), key=lambda a: len(a.response or ""))
    assert by_len[0].response == "A short poem."
    long = by_len[-1].response or ""
    assert long.startswith("All work") and len(long) < 5_100
    assert long.endswith(f"5,000 of {len(answer):,} characters kept]")
    assert run.summary["truncated_answers"] == 1
    assert "answers stored truncated" in result.output


# -- every input file names file, line and field (tests/ops2: one per case) -----------------------


def test_a_bad_field_in_a_run_config_names_its_line(tmp_path: Path, sqlite_db: Path) -> None:
    config = tmp_path / "scan.yaml"
    config.write_text("target:\n  model: openai/x\n  api_base: 'http://127.0.0.1:9/v1'\n"
                      "  temprature: 0.3\n  max_tokens: lots\nconcurrency: 4\n")
    result = siegeflow("run", "--config", str(config), db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, f"{config}:4: field target.temprature", "not permitted",
                     f"{config}:5: field target.max_tokens", "valid integer")
    _untouched(sqlite_db)


def test_a_bad_field_in_a_json_run_config_names_its_line(tmp_path: Path, sqlite_db: Path) -> None:
    config = tmp_path / "scan.json"
    config.write_text('{"target": {"model": "openai/x",\n  "max_tokens": -1},\n "concurrency": 2}\n')
    result = siegeflow("run", "--config", str(config), db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, f"{config}:2: field target.max_tokens", "greater than or equal to 1")
    _untouched(sqlite_db)


def test_an_attack_option_in_a_multi_line_config_is_pointed_at(
    tmp_path: Path, sqlite_db: Path
) -> None:
    config = _config(tmp_path, "attack:\n  name: templates\n  options:\n    persona: x\n"
                               "    variantz: [role_play]\n")
    result = siegeflow("run", "--config", config, db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, f"{config}:6: field attack", "variantz")
    _untouched(sqlite_db)


def test_a_run_config_that_is_not_yaml_names_its_line(tmp_path: Path, sqlite_db: Path) -> None:
    config = tmp_path / "scan.yaml"
    config.write_text("target:\n  model: openai/x\n   api_base: wrong indent: here\n")
    result = siegeflow("run", "--config", str(config), db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, f"{config}:3", "not valid YAML")
    _untouched(sqlite_db)


def test_a_bad_field_in_a_yaml_goal_file_names_the_fields_own_line(
    tmp_path: Path, sqlite_db: Path
) -> None:
    goals = tmp_path / "goals.yaml"
    goals.write_text("- goal: fine\n  id: a\n- id: b\n  category: c\n  goal: \"bad\\x07\"\n")
    result = siegeflow("run", "--target", "openai/x", "--goals", str(goals),
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "goals.yaml", "line 5", "'goal'", "U+0007")
    goals.write_text("goals:\n  - goal: fine\n    category: [not, text]\n")
    result = siegeflow("run", "--target", "openai/x", "--goals", str(goals),
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "goals.yaml", "line 3", "'category'", "expected a string")
    _untouched(sqlite_db)


def test_a_yaml_goal_file_that_is_not_yaml_names_its_line(tmp_path: Path, sqlite_db: Path) -> None:
    goals = tmp_path / "goals.yaml"
    goals.write_text("- goal: fine\n- goal: \"unterminated\n")
    result = siegeflow("run", "--target", "openai/x", "--goals", str(goals),
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "goals.yaml", "line 3", "bad YAML")
    _untouched(sqlite_db)


def test_a_tsv_goal_file_names_line_and_field(tmp_path: Path, sqlite_db: Path) -> None:
    goals = tmp_path / "goals.tsv"
    goals.write_bytes(b"goal\tcategory\nfine\ta\nbad\x00goal\tb\n")
    result = siegeflow("run", "--target", "openai/x", "--goals", str(goals),
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "goals.tsv", "line 3", "'goal'", "NUL")
    _untouched(sqlite_db)


def test_a_csv_row_with_missing_columns_names_its_line(tmp_path: Path, sqlite_db: Path) -> None:
    goals = tmp_path / "goals.csv"
    goals.write_text("id,goal,category\na,fine,c\nb,short\n")
    result = siegeflow("run", "--target", "openai/x", "--goals", str(goals),
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, "goals.csv", "line 3", "columns")
    _untouched(sqlite_db)


def _many_shot(dialogues: Path, db: Path) -> Outcome:
    return siegeflow("run", "--target", "openai/x", "--attack", "many_shot",
                     "--attack-option", f"dialogues_file={json.dumps(str(dialogues))}",
                     "--attack-option", "shots=[1]", db=f"sqlite:///{db}")


@pytest.mark.parametrize(("name", "content", "needles"), [
    ("nul.csv", b"user,assistant\nhi,ok\nhi\x00there,ok\n", ["line 3", "'user'", "NUL"]),
    ("missing.jsonl", b'{"user": "hi", "assistant": "ok"}\n{"user": "hi"}\n',
     ["line 2", "'assistant'", "non-empty string"]),
    ("type.yaml", b"- user: hi\n  assistant: ok\n- user: hi\n  assistant: [x]\n",
     ["line 4", "'assistant'", "non-empty string"]),
    ("broken.yaml", b"- user: hi\n  assistant: \"ok\n", ["line 3", "bad YAML"]),
])
def test_a_bad_many_shot_dialogues_file_names_file_line_and_field(
    tmp_path: Path, sqlite_db: Path, name: str, content: bytes, needles: list[str]
) -> None:
    dialogues = tmp_path / name
    dialogues.write_bytes(content)
    assert_bad_input(_many_shot(dialogues, sqlite_db), name, *needles)
    _untouched(sqlite_db)


def test_a_bad_template_judge_file_names_file_line_and_placeholder(
    tmp_path: Path, sqlite_db: Path
) -> None:
    template = tmp_path / "judge.txt"
    template.write_text("Goal: {goal}\nAnswer: {respnse}\nSay yes or no.\n")
    spec = {"name": "template", "template": str(template),
            "model": {"model": "openai/j", "api_base": "http://127.0.0.1:9/v1"}}
    result = siegeflow("run", "--target", "openai/x", "--judge", json.dumps(spec),
                       db=f"sqlite:///{sqlite_db}")
    assert_bad_input(result, str(template), "line 2", "{respnse}")
    _untouched(sqlite_db)


@pytest.mark.parametrize(("name", "content", "needles"), [
    ("labels.csv", "id,goal,response,label\n1,g,r,1\n2,g,r,maybe\n",
     ["labels.csv:3", "'label'", "maybe"]),
    ("labels.jsonl", '{"id": "1", "goal": "g", "response": "r", "label": 1}\n'
                     '{"id": "2", "goal": "g", "response": "r"}\n',
     ["labels.jsonl:2", "'label'"]),
    ("broken.jsonl", '{"id": "1", "goal": "g", "response": "r", "label": 1}\n{"id": "2",\n',
     ["broken.jsonl:2", "not valid JSON"]),
])
def test_a_bad_labels_file_names_file_line_and_field(
    tmp_path: Path, name: str, content: str, needles: list[str]
) -> None:
    labels = tmp_path / name
    labels.write_text(content)
    result = siegeflow("judges", "validate", "--labels", str(labels), "--judge", "refusal",
                       "--no-store")
    assert_bad_input(result, *needles)


def test_an_unreachable_prefect_api_is_one_line_not_a_traceback(sqlite_db: Path) -> None:
    """Valid input, but PREFECT_API_URL names nothing: said before any flow starts. In a
    subprocess: in this process a test session's Prefect settings would win over the variable."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api", "COLUMNS": "300"}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--target", "openai/x", "--api-base",
         "http://127.0.0.1:9/v1", "--db", f"sqlite:///{sqlite_db}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "http://127.0.0.1:9/api" in output and "does not answer" in output
    _untouched(sqlite_db)


@pytest.mark.postgres
@pytest.mark.parametrize(("url", "needle"), [
    ("postgresql+psycopg://postgres@127.0.0.1:5432/siegeflow_no_such_db", "does not exist"),
    ("postgresql+psycopg://postgres@127.0.0.1:1/test", "port 1 failed"),
    ("postgresql+psycopg://siegeflow_no_such_role@127.0.0.1:5432/test", "does not exist"),
])
@pytest.mark.parametrize("command", [["run", "--target", "openai/x", "--api-base",
                                      "http://127.0.0.1:9/v1"], ["resume", "some-run"],
                                     ["runs", "list"]])
def test_a_store_that_cannot_be_opened_is_one_line_exit_2_before_any_flow(
    command: list[str], url: str, needle: str,
) -> None:
    """A reachable-looking but wrong store (no such database, a closed port, an unknown role)
    is opened before a flow run exists: exit 2 and one line, not a failed flow's tracebacks.
    (Prefect is on a closed port here: a started flow would exit 1.)"""
    result = siegeflow(*command, "--db", url)
    assert_bad_input(result, "cannot be opened", needle)
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 3


def test_a_sqlite_store_in_a_folder_that_cannot_be_made_is_one_line_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = siegeflow("run", "--target", "openai/x", "--db", f"sqlite:///{blocker}/sub/store.db")
    assert_bad_input(result, "cannot be created", "not a writable folder")
