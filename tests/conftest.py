"""Suite-wide settings: no network at import or run, quiet third-party telemetry.

Area-specific fixtures live in each test folder's own conftest.py.
"""

import os
import tempfile

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("LITELLM_LOG", "ERROR")
# HTML reports the flows write go to a throwaway folder, not the user's data directory.
os.environ.setdefault("SIEGEFLOW_REPORT_DIR", tempfile.mkdtemp(prefix="siegeflow-test-reports-"))
# Prefect retries of a failed step: fast in tests (tasks read this at import).
os.environ.setdefault("SIEGEFLOW_TASK_RETRY_DELAYS", "0.2,0.2")

#: The PostgreSQL server every machine runs; CI must reach it (tests fail, never skip).
POSTGRES_ADMIN_URL = os.environ.get(
    "SIEGEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_api_url(tmp_path_factory: pytest.TempPathFactory):
    """One real Prefect server for the whole session, started on first use.

    A cold start migrates the server's database (10-60 s on a busy 2-core machine), so every
    test folder shares it instead of starting its own.
    """
    from pathlib import Path

    from flows.server import prefect_api

    home = tmp_path_factory.mktemp("prefect-home")
    saved = os.environ.pop("PREFECT_API_URL", None)
    try:
        with prefect_api(Path(home)) as url:
            yield url
    finally:
        if saved is not None:
            os.environ["PREFECT_API_URL"] = saved
