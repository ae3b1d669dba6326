"""siegeflow's own settings: every `SIEGEFLOW_*` environment variable, in one pydantic model.

Why one model: the variables used to be read ad hoc, several into module constants at import,
so a value set after import (a test's monkeypatch, a worker's environment for the next flow
run) was ignored, and nothing listed them all. Read them with `current_settings()` at the
moment they are needed, never into a module constant; docs/settings.md is the table.

This package sits below every other one (even `core` and `tracking` may import it) and imports
nothing of siegeflow. Prefect's own settings (`PREFECT_API_URL`, ...) are not here: they are
read through Prefect.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "SIEGEFLOW_"


class SiegeflowSettings(BaseSettings):
    """The `SIEGEFLOW_*` variables (name = prefix + field name, upper case)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    # -- where things are
    db_url: str | None = Field(None, description="Tracking store URL; unset: a SQLite file "
                               "under the user data dir.")
    prefect_home: Path | None = Field(None, description="Data directory of the local Prefect "
                                      "server the CLI starts; unset: the user data dir.")
    report_dir: Path | None = Field(None, description="Where flows write HTML reports.")
    cache_dir: Path | None = Field(None, description="Downloaded goal-set files.")
    goals_path: str | None = Field(None, description="Folder of presets' published files.")
    offline: bool = Field(False, description="No goal-set downloads (1, true or yes).")
    project_dir: Path | None = Field(None, description="The clone a deployment run works in "
                                     "(prefect.yaml's pull step).")
    # -- shared services
    redis_url: str | None = Field(None, description="Redis for rate limits shared across "
                                  "processes; unset: per process.")
    # -- runs
    heartbeat_s: float = Field(15.0, gt=0, description="A run's heartbeat period.")
    stale_after_s: float = Field(60.0, gt=0, description="Silence after which a RUNNING run "
                                 "is stale.")
    task_retry_delays: Annotated[tuple[float, ...], NoDecode] = Field(
        (2.0, 10.0), description="Delays between Prefect retries of a step (comma-separated).")
    # -- sharding
    shard_deployment: str = Field("siegeflow-attack/attack-shard",
                                  description="The deployment a sharded run's parent triggers.")
    shard_retries: int = Field(2, ge=0, description="Prefect flow retries of a shard.")
    shard_retry_delay_s: int = Field(5, ge=0, description="Delay between a shard's retries.")
    shard_timeout_s: float | None = Field(None, gt=0, description="How long the parent waits "
                                          "for a shard; unset: as long as it takes.")
    shard_crash_retries: int = Field(1, ge=0, description="New flow runs for a shard that "
                                     "Crashed.")
    shard_silence_s: float = Field(120.0, ge=35, description="A shard flow run Pending "
                                   "this long, or Running with no Prefect heartbeat this "
                                   "long, is marked Crashed by its parent (heartbeats come "
                                   "every 30 s).")
    # -- zombie flow runs (flows/zombies.py)
    zombie_silence_s: float = Field(90.0, ge=15, le=600, description="Where `siegeflow "
                                    "deploy` runs: a siegeflow deployment run with no siegeflow "
                                    "heartbeat for this long is marked Crashed by the "
                                    "automation. In flow runs: they send one every third of it.")

    @field_validator("offline", mode="before")
    @classmethod
    def _offline(cls, value: Any) -> Any:
        """As before the model: only 1/true/yes (any case) turn downloads off."""
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes"}
        return value

    @field_validator("task_retry_delays", mode="before")
    @classmethod
    def _delays(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(float(x) for x in value.split(",") if x.strip())
        return value

    @field_validator("db_url", "redis_url", "goals_path", "prefect_home", "report_dir",
                     "cache_dir", "project_dir", "shard_timeout_s", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """`VAR=` means unset, as `os.environ.get(VAR) or default` did."""
        return None if isinstance(value, str) and not value.strip() else value


def current_settings() -> SiegeflowSettings:
    """The settings as the environment says now (cached while the `SIEGEFLOW_*` variables
    stay the same, so a hot path pays a dict scan, not a validation)."""
    return _settings_for(tuple(sorted(
        (key, value) for key, value in os.environ.items() if key.upper().startswith(PREFIX))))


@lru_cache(maxsize=8)
def _settings_for(_environ: tuple[tuple[str, str], ...]) -> SiegeflowSettings:
    return SiegeflowSettings()


__all__ = ["PREFIX", "SiegeflowSettings", "current_settings"]
