"""`siegeflow attacks` lists the new techniques; a bad technique option exits 2 before a run."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_attacks_lists_the_new_techniques() -> None:
    result = runner.invoke(app, ["attacks"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("many_shot", "past_tense", "ciphers", "translation", "compose"):
        assert f"│ {name} " in result.output


def test_bad_technique_options_exit_2_naming_the_problem(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    common = ["run", "--target", "openai/x", "--db", f"sqlite:///{db}"]
    cases = [
        (["--attack", "translation"], "needs a model to translate"),
        (["--attack", "compose", "--attack-option", 'steps=["encodings:nope"]'], "steps"),
        (["--attack", "many_shot", "--attack-option",
          f"dialogues_file={tmp_path / 'missing.jsonl'}"], "file not found"),
    ]
    for args, expected in cases:
        result = runner.invoke(app, [*common, *args], env={"COLUMNS": "300"})
        assert result.exit_code == 2, result.output
        assert expected in " ".join(result.output.split())
    assert not db.exists()
