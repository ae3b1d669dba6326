"""Constants and helpers shared by the operations tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The Redis server every machine runs; tests use keys of their own (uuid) under siegeflow:rl.
REDIS_URL = os.environ.get("SIEGEFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
