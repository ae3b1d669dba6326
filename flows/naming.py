"""What a siegeflow run is called in the Prefect UI: its flow run is renamed after the run
(attack, target, short run id) and tagged (`siegeflow`, `kind:`, `attack:`, `target:`), so a
user finds a run in the UI's list and filters without opening its artifacts.

Tag and name values are short and carry nothing secret: the target is named by its model
string alone (never its API base, which may hold credentials in its URL), cleaned to a small
alphabet and clipped. Renaming is cosmetic: if the Prefect API refuses it, the run goes on.
"""

from __future__ import annotations

import logging
import re
from uuid import UUID

import httpx

from targets import TargetConfig

logger = logging.getLogger("siegeflow.flows.naming")

_UNSAFE = re.compile(r"[^A-Za-z0-9._:/+-]+")
MAX_VALUE = 48


def short_value(text: str, limit: int = MAX_VALUE) -> str:
    """A tag-safe value: no spaces, no URL credentials, at most `limit` characters."""
    text = text.strip()
    if "://" in text or "@" in text:  # a URL-like value: keep only its last path part
        text = re.split(r"[/@]", text.rstrip("/"))[-1]
    cleaned = _UNSAFE.sub("-", text).strip("-") or "unknown"
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "~"


def model_of(target: TargetConfig) -> str:
    return short_value(target.model or "unknown")


def run_tags(*, kind: str, attack: str, target: TargetConfig) -> list[str]:
    return ["siegeflow", f"kind:{short_value(kind, 16)}", f"attack:{short_value(attack)}",
            f"target:{model_of(target)}"]


def run_name(*, attack: str, target: TargetConfig, run_id: str) -> str:
    """`<attack> vs <model> · <run id's first 8>` — what the Prefect UI lists."""
    return f"{short_value(attack)} vs {model_of(target)} · {run_id[:8]}"


def name_flow_run(flow_run_id: str, *, kind: str, attack: str, target: TargetConfig,
                  run_id: str) -> bool:
    """Rename and tag the flow run (keeping the tags it already has); True if it was done."""
    if not flow_run_id:
        return False
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(UUID(flow_run_id))
            tags = list(dict.fromkeys([*(current.tags or []),
                                       *run_tags(kind=kind, attack=attack, target=target)]))
            client.update_flow_run(UUID(flow_run_id),
                                   name=run_name(attack=attack, target=target, run_id=run_id),
                                   tags=tags)
    except (ObjectNotFound, PrefectHTTPStatusError, httpx.HTTPError, ValueError) as exc:
        logger.warning("could not name the Prefect flow run %s: %s", flow_run_id, exc)
        return False
    return True
