"""Suite-wide settings: no network at import or run, quiet third-party telemetry.

Area-specific fixtures live in each test folder's own conftest.py.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("LITELLM_LOG", "ERROR")

#: The PostgreSQL server every machine runs; CI must reach it (tests fail, never skip).
POSTGRES_ADMIN_URL = os.environ.get(
    "SIEGEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
