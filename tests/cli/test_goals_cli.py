"""`siegeflow goals`: presets with counts from the files on this machine; bad names exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_cache_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIEGEFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SIEGEFLOW_OFFLINE", "1")
    monkeypatch.delenv("SIEGEFLOW_GOALS_PATH", raising=False)


def _rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and cells[1]:
            rows[cells[1]] = cells[2:]
    return rows


def test_goals_lists_presets_with_counts_from_the_real_files() -> None:
    result = runner.invoke(app, ["goals", "--goals-path", str(SHARED_DATA)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows["builtin:jbb-mini"][:3] == ["harmful", "30", "10"]
    assert rows["harmbench:contextual"][:3] == ["harmful", "100", "6"]
    assert rows["advbench:behaviors"][1] == "520"
    assert rows["xstest:safe"][:3] == ["benign", "250", "10"]
    assert rows["jbb:benign"][1] == "not downloaded"  # not in ../shared/data


def test_goals_without_files_says_not_downloaded() -> None:
    result = runner.invoke(app, ["goals"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert _rows(result.output)["strongreject:full"][1] == "not downloaded"


def test_goals_show_prints_source_checksum_and_categories() -> None:
    result = runner.invoke(app, ["goals", "show", "strongreject:full", "--goals-path",
                                 str(SHARED_DATA)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "alexandrasouly/strongreject" in result.output
    assert "4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381" in result.output
    assert "Non-violent crimes" in result.output and "59" in result.output


def test_unknown_preset_exits_2_listing_the_dataset_presets() -> None:
    result = runner.invoke(app, ["goals", "show", "xstest:nope"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "xstest:safe" in result.output


def test_run_with_a_missing_preset_file_exits_2_saying_where_to_put_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--target", "openai/x", "--goals", "harmbench:standard",
                                 "--db", f"sqlite:///{tmp_path}/x.db"], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "harmbench_behaviors_text_all.csv" in flat and "--goals-path" in flat
    assert "raw.githubusercontent.com/centerforaisafety/HarmBench" in flat
    assert not (tmp_path / "x.db").exists()  # nothing recorded
