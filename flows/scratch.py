"""Prefect's process-worker scratch holds the worker's environment: keep keys out of it.

Why: for each flow run, Prefect 3.8's process worker makes `$TMPDIR/prefect-workspace-attempt-*/`
and its supervisor writes `workspace.json` there: the flow run's *whole* environment (so the
worker can later run `on_crashed`/`on_cancellation` hooks with it). The worker deletes the
directory when the run ends, but a SIGKILLed worker never does, and a key exported to the worker
(`api_key_env`, the README's main way) stays on disk. Prefect has no setting that avoids the file
short of replacing the worker's launch command.

So every siegeflow flow run, first thing:

* **scrubs its own manifest** (`scrub_own_scratch`): rewrites `workspace.json` (atomically,
  mode 0600) keeping only what the worker's hooks need — Prefect's settings, the interpreter's
  runtime (`PATH`, `PYTHON*`, `HOME`, locale, proxies, CA bundles), libpq's non-secret `PG*`
  and siegeflow's settings — minus any variable the run's configs name as a key (`api_key_env`)
  or whose name says credential (`*KEY*`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`, ...), with the
  password removed from URL values (`postgresql://u:pw@h/db` keeps `u@h/db`). A key under any
  other name is dropped too: a worker's environment holds every run's keys. Kept on purpose:
  `PREFECT_API_KEY` (Prefect's own; the hooks need it to reach Prefect Cloud). The hooks still
  run; a store password must then come from `~/.pgpass`.
* **removes stale scratch** (`sweep_stale_scratch`): another `prefect-workspace-attempt-*`
  directory of this user whose flow run has no live process on this machine (no process has its
  `PREFECT__FLOW_RUN_ID`) and that has not changed for `STALE_AFTER_S`: a live worker deletes
  its directory seconds after its run ends, so one left that long belongs to a dead worker.

Only directories that look exactly like Prefect's (name prefix, owned by us, not a symlink, a
`supervisor.json` naming a flow run and this directory's `workspace.json`) are ever touched.
The window left open: a SIGKILL in the seconds between the supervisor writing the manifest and
the flow's first line; the next siegeflow flow run on the machine removes that directory after
`STALE_AFTER_S`. Linux only (`/proc`); elsewhere both are no-ops. The sweep assumes the
workers sharing a temp directory share this PID namespace (containers that share `/tmp` but
not their processes should give each worker its own `TMPDIR`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from settings import SiegeflowSettings

logger = logging.getLogger("siegeflow.flows.scratch")

PREFIX = "prefect-workspace-attempt-"
MANIFEST = "workspace.json"
SUPERVISOR = "supervisor.json"
#: Seconds a dead run's scratch is left alone before it is removed (a live worker needs ~1 s).
STALE_AFTER_S = 600.0
#: Names that say "credential": whole underscore-separated words, any case.
_SECRET_NAME = re.compile(
    r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH(_STRING)?)(_|$)",
    re.IGNORECASE,
)
#: What a hook needs besides Prefect's own settings: the interpreter's and libraries' runtime,
#: libpq's non-secret settings and siegeflow's settings. Anything else (a key under any name)
#: is dropped, since another run's key sits in this run's environment too.
_KEPT_NAME = re.compile(
    r"^(PATH|PYTHON[A-Z_]*|VIRTUAL_ENV|UV_[A-Z_]+|HOME|USER|LOGNAME|SHELL|PWD|LANG|LANGUAGE|LC_[A-Z]+"
    r"|TZ|TMPDIR|TEMP|TMP|XDG_[A-Z_]+|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE"
    r"|(HTTP|HTTPS|NO|ALL)_PROXY|(http|https|no|all)_proxy|PGPASSFILE|PGHOST|PGPORT|PGUSER"
    r"|PGDATABASE|PGSSLMODE|PGSERVICEFILE|LITELLM_LOCAL_MODEL_COST_MAP|DO_NOT_TRACK"
    r"|SIEGEFLOW_(" + "|".join(name.upper() for name in SiegeflowSettings.model_fields) + r"))$"
)
#: Prefect's own credential stays: the worker's hooks need it to reach Prefect Cloud.
_PREFECT_KEPT = frozenset({"PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"})


def key_env_names(*configs: Any) -> set[str]:
    """Every `api_key_env` named anywhere in these configs (models, dicts, lists)."""
    names: set[str] = set()
    stack = [c.model_dump(mode="json") if hasattr(c, "model_dump") else c for c in configs]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            value = item.get("api_key_env")
            if isinstance(value, str) and value:
                names.add(value)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return names


def scrub_environment(env: dict[str, str], key_names: Iterable[str]) -> dict[str, str]:
    """What a hook needs of `env`: no key under any name, no password inside a URL."""
    names = set(key_names)
    secret_values = {os.environ[n] for n in names if os.environ.get(n)}
    kept: dict[str, str] = {}
    for name, value in env.items():
        if name in names or value in secret_values or not _is_kept(name):
            continue
        kept[name] = _without_url_password(value)
    return kept


def _is_kept(name: str) -> bool:
    if name.startswith("PREFECT_"):
        return name in _PREFECT_KEPT or not _SECRET_NAME.search(name)
    return bool(_KEPT_NAME.match(name)) and not _SECRET_NAME.search(name)


def _without_url_password(value: str) -> str:
    if "://" not in value or "@" not in value:
        return value
    try:
        parts = urlsplit(value)
        if parts.password is None:
            return value
    except ValueError:
        return value
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def _scratch_dirs(root: Path) -> list[tuple[Path, str]]:
    """Prefect's attempt directories under `root` owned by us, with their flow-run ids."""
    found = []
    uid = os.getuid()
    for path in root.glob(f"{PREFIX}*"):
        with contextlib.suppress(OSError, ValueError):
            info = path.lstat()
            if path.is_symlink() or not path.is_dir() or info.st_uid != uid:
                continue
            config = json.loads((path / SUPERVISOR).read_text(encoding="utf-8"))
            if Path(str(config.get("manifest_path"))) != path / MANIFEST:
                continue
            found.append((path, str(config["flow_run_id"])))
    return found


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".siegeflow-scrub-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _scrub_manifest(manifest: Path, key_names: Iterable[str]) -> bool:
    if manifest.is_symlink() or not manifest.is_file():
        return False
    data = json.loads(manifest.read_text(encoding="utf-8"))
    env = data.get("environment")
    if not isinstance(env, dict):
        return False
    data["environment"] = scrub_environment({str(k): str(v) for k, v in env.items()}, key_names)
    _write_private_json(manifest, data)
    return True


def scrub_own_scratch(*configs: Any, root: Path | None = None) -> bool:
    """Rewrite this flow run's `workspace.json` without keys; True when one was scrubbed."""
    flow_run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if not flow_run_id:
        return False  # not started by a worker: there is no scratch
    names = key_env_names(*configs)
    for path, run_id in _scratch_dirs(root or Path(tempfile.gettempdir())):
        if run_id == flow_run_id:
            try:
                return _scrub_manifest(path / MANIFEST, names)
            except (OSError, ValueError) as exc:  # never stop a run over its scratch
                logger.warning("could not scrub %s: %s", path / MANIFEST, exc)
    return False


def _live_flow_run_ids() -> set[str] | None:
    """Flow-run ids of this machine's live processes; None when /proc cannot tell."""
    proc = Path("/proc")
    if not (proc / "self" / "environ").exists():
        return None
    ids: set[str] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for var in (entry / "environ").read_bytes().split(b"\0"):
                if var.startswith(b"PREFECT__FLOW_RUN_ID="):
                    ids.add(var.split(b"=", 1)[1].decode("ascii", "replace"))
    return ids


def sweep_stale_scratch(root: Path | None = None, *, stale_after_s: float = STALE_AFTER_S,
                        ) -> list[Path]:
    """Remove scratch directories left by dead workers; returns those removed.

    Runs at every flow start: /proc is read only when some scratch is old enough to be a
    candidate (usually there is none)."""
    now = time.time()
    old = []
    for path, run_id in _scratch_dirs(root or Path(tempfile.gettempdir())):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime >= stale_after_s:
                old.append((path, run_id))
    live = _live_flow_run_ids() if old else None
    if live is None:
        return []
    removed = []
    for path, run_id in old:
        with contextlib.suppress(OSError):
            if run_id in live:
                continue
            shutil.rmtree(path)
            removed.append(path)
            logger.info("removed stale Prefect scratch %s (flow run %s)", path, run_id)
    return removed


def secure_worker_scratch(*configs: Any) -> None:
    """At a flow run's start: scrub its own scratch, remove dead runs' scratch."""
    scrub_own_scratch(*configs)
    sweep_stale_scratch()
