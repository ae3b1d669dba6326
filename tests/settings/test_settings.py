"""The `SIEGEFLOW_*` variables: one model, read when needed, every one documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from settings import PREFIX, SiegeflowSettings, current_settings

REPO = Path(__file__).resolve().parents[2]
#: siegeflow's packages (not tests, not benches).
PACKAGES = ("attacks", "cli", "core", "flows", "goals", "judges", "optimizers", "settings",
            "targets", "tasks", "tracking")


def test_a_variable_set_after_import_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIEGEFLOW_HEARTBEAT_S", raising=False)
    assert current_settings().heartbeat_s == 15.0
    monkeypatch.setenv("SIEGEFLOW_HEARTBEAT_S", "0.5")
    assert current_settings().heartbeat_s == 0.5
    monkeypatch.setenv("SIEGEFLOW_HEARTBEAT_S", "2")
    assert current_settings().heartbeat_s == 2.0


@pytest.mark.parametrize(("value", "offline"), [
    ("1", True), ("true", True), (" YES ", True), ("0", False), ("no", False), ("", False),
    ("whatever", False),
])
def test_offline_keeps_its_old_spelling(monkeypatch: pytest.MonkeyPatch, value: str,
                                        offline: bool) -> None:
    monkeypatch.setenv("SIEGEFLOW_OFFLINE", value)
    assert current_settings().offline is offline


def test_values_parse_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIEGEFLOW_TASK_RETRY_DELAYS", "SIEGEFLOW_SHARD_TIMEOUT_S", "SIEGEFLOW_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    assert current_settings().task_retry_delays == (2.0, 10.0)
    monkeypatch.setenv("SIEGEFLOW_TASK_RETRY_DELAYS", "0.2, 0.2,")
    monkeypatch.setenv("SIEGEFLOW_SHARD_TIMEOUT_S", "")  # empty: unset
    monkeypatch.setenv("SIEGEFLOW_DB_URL", "")
    settings = current_settings()
    assert settings.task_retry_delays == (0.2, 0.2)
    assert settings.shard_timeout_s is None and settings.db_url is None


def test_the_readers_take_the_current_value(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    from flows.server import default_home
    from goals.fetch import cache_dir, downloads_allowed
    from targets.ratelimit import shared_url
    from tracking import default_db_url

    monkeypatch.setenv("SIEGEFLOW_DB_URL", f"sqlite:///{tmp_path}/a.db")
    monkeypatch.setenv("SIEGEFLOW_REDIS_URL", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("SIEGEFLOW_PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SIEGEFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SIEGEFLOW_OFFLINE", "1")
    assert default_db_url() == f"sqlite:///{tmp_path}/a.db"
    assert shared_url() == "redis://127.0.0.1:9/0"
    assert default_home() == tmp_path / "home"
    assert cache_dir() == tmp_path / "cache"
    assert not downloads_allowed()


def test_no_package_reads_a_siegeflow_variable_on_its_own() -> None:
    """One model: `os.environ[...]`/`os.getenv` of a SIEGEFLOW_ name only in `settings`.

    `reports/artifacts.py` (SIEGEFLOW_REPORT_DIR) is another team's file for now; writes (the
    CLI hands a password-bearing store URL to its flow runs) are not reads."""
    read = re.compile(r"os\.(environ\.get|getenv)\(\s*[\"']SIEGEFLOW_|os\.environ\[[\"']SIEGEFLOW_"
                      r"[A-Z_]+[\"']\](?!\s*=)")
    found = [f"{path.relative_to(REPO)}:{n}"
             for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if read.search(line)]
    assert found == [], found


def test_every_variable_is_in_the_table() -> None:
    table = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    missing = [f"{PREFIX}{name.upper()}" for name in SiegeflowSettings.model_fields
               if f"`{PREFIX}{name.upper()}`" not in table]
    assert missing == [], missing
