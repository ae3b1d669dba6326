"""flows/scratch.py: a flow run scrubs keys from its own Prefect scratch and removes dead runs'
scratch, touching nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flows import scratch
from targets import TargetConfig


def _attempt(root: Path, flow_run_id: str, env: dict[str, str], name: str | None = None) -> Path:
    """A directory laid out as Prefect 3.8's process worker and supervisor leave it."""
    path = root / (name or f"prefect-workspace-attempt-{uuid.uuid4().hex[:8]}")
    path.mkdir()
    manifest = path / "workspace.json"
    (path / "supervisor.json").write_text(json.dumps({
        "flow_run_id": flow_run_id, "workspace_root": str(root), "manifest_path": str(manifest),
        "command": None,
    }))
    manifest.write_text(json.dumps({"working_directory": str(root), "environment": env,
                                    "hook_command": ["python", "hook"]}))
    return path


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_key_env_names_are_found_in_nested_configs() -> None:
    target = TargetConfig(model="openai/x", api_key_env="TARGET_KEY_VAR")
    options = {"attacker": {"model": "openai/y", "api_key_env": "ATTACKER_VAR"},
               "judges": [{"api_key_env": "JUDGE_VAR"}]}
    assert scratch.key_env_names(target, options, None) == {
        "TARGET_KEY_VAR", "ATTACKER_VAR", "JUDGE_VAR"}


def test_scrub_environment_drops_named_keys_credential_names_and_url_passwords(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLAIN_NAME", "sk-the-key")
    env = {
        "PLAIN_NAME": "sk-the-key", "COPY_OF_IT": "sk-the-key", "OPENAI_API_KEY": "sk-2",
        "GH_TOKEN": "t", "DB_PASSWORD": "p", "MY_SECRET": "s", "PREFECT_API_KEY": "pk",
        "SIEGEFLOW_DB_URL": "postgresql+psycopg://sf:hunter2@db:5432/sf",
        "REDIS": "redis://:pw@r:6379/0", "PATH": "/usr/bin", "PWD": "/w",
        "KEYBOARD": "us", "HOME": "/home/u", "PLAIN_URL": "http://host/x?a=b@c",
    }
    env.update({"SIEGEFLOW_REDIS_URL": "redis://:pw@r:6379/0", "SIEGEFLOW_MY_KEY": "k",
                "SIEGEFLOW_OTHER_TARGET": "sk-another-runs-key", "HTTPS_PROXY": "http://u:p@px:3128",
                "PREFECT_API_URL": "http://p/api", "PREFECT_LOGGING_LEVEL": "INFO",
                "PGPASSWORD": "x", "PGPASSFILE": "/home/u/.pgpass", "LC_ALL": "C.UTF-8"})
    kept = scratch.scrub_environment(env, {"PLAIN_NAME"})
    assert kept == {
        "SIEGEFLOW_DB_URL": "postgresql+psycopg://sf@db:5432/sf",
        "SIEGEFLOW_REDIS_URL": "redis://r:6379/0", "HTTPS_PROXY": "http://u@px:3128",
        "PATH": "/usr/bin", "PWD": "/w", "HOME": "/home/u", "PREFECT_API_KEY": "pk",
        "PREFECT_API_URL": "http://p/api", "PREFECT_LOGGING_LEVEL": "INFO",
        "PGPASSFILE": "/home/u/.pgpass", "LC_ALL": "C.UTF-8",
    }


def test_a_flow_run_scrubs_its_own_manifest_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"TARGET_VAR": "sk-canary", "PATH": "/bin", "SIEGEFLOW_PROJECT_DIR": "/repo"}
    mine = _attempt(tmp_path, "run-mine", env)
    other = _attempt(tmp_path, "run-other", env)
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "run-mine")
    monkeypatch.setenv("TARGET_VAR", "sk-canary")
    target = TargetConfig(model="openai/x", api_key_env="TARGET_VAR")

    assert scratch.scrub_own_scratch(target, root=tmp_path)

    manifest = json.loads((mine / "workspace.json").read_text())
    assert manifest["environment"] == {"PATH": "/bin", "SIEGEFLOW_PROJECT_DIR": "/repo"}
    assert manifest["hook_command"] == ["python", "hook"]  # the rest is kept for the hooks
    assert (mine / "workspace.json").stat().st_mode & 0o777 == 0o600
    assert b"sk-canary" in (other / "workspace.json").read_bytes()  # not ours: untouched
    assert sorted(p.name for p in mine.iterdir()) == ["supervisor.json", "workspace.json"]


def test_no_flow_run_id_means_no_scratch_to_scrub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)
    mine = _attempt(tmp_path, "run-x", {"A_TOKEN": "t"})
    assert not scratch.scrub_own_scratch(root=tmp_path)
    assert b'"A_TOKEN"' in (mine / "workspace.json").read_bytes()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_sweep_removes_only_old_scratch_of_runs_without_a_live_process(tmp_path: Path) -> None:
    live_id = f"live-{uuid.uuid4().hex}"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "PREFECT__FLOW_RUN_ID": live_id},
    )
    try:
        dead_old = _attempt(tmp_path, "dead-run", {"K": "v"})
        live_old = _attempt(tmp_path, live_id, {"K": "v"})
        dead_fresh = _attempt(tmp_path, "dead-fresh", {"K": "v"})
        foreign = _attempt(tmp_path, "dead-foreign", {"K": "v"}, name="prefect-other-x")
        mismatched = _attempt(tmp_path, "dead-mismatch", {"K": "v"})
        (mismatched / "supervisor.json").write_text(json.dumps(
            {"flow_run_id": "dead-mismatch", "manifest_path": "/elsewhere/workspace.json"}))
        unrelated = tmp_path / "prefect-workspace-attempt-noconfig"
        unrelated.mkdir()
        (unrelated / "data.txt").write_text("keep me")
        link = tmp_path / "prefect-workspace-attempt-link"
        link.symlink_to(dead_old, target_is_directory=True)
        for path in (dead_old, live_old, foreign, mismatched, unrelated):
            _age(path, scratch.STALE_AFTER_S + 60)

        removed = scratch.sweep_stale_scratch(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert removed == [dead_old]
    assert not dead_old.exists()
    for kept in (live_old, dead_fresh, foreign, mismatched, unrelated):
        assert kept.exists(), kept
    assert link.is_symlink()  # a link is never followed nor removed
