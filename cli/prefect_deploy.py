"""`prefect deploy`, with one client call made compatible with this environment's server.

Why: prefect 3.8's `prefect deploy` ends by listing the pool's online workers with
`read_workers_for_work_pool(..., offset=None, limit=None)`, sending `"limit": null`; the
server's `limit: int = Body(None)` rejects an explicit null under the fastapi we pin
(0.154: 422 "Input should be a valid integer"), so the command fails after registering the
*first* deployment and never registers the rest. Filling in the two defaults here (0 and the
server's default page size) changes nothing else. Drop this module when prefect or fastapi
agree again.

    python -m cli.prefect_deploy [prefect deploy arguments...]
"""

from __future__ import annotations

import sys
from typing import Any


def _patch() -> None:
    from prefect.client.orchestration import PrefectClient

    original = PrefectClient.read_workers_for_work_pool

    async def read_workers_for_work_pool(
        self: Any, work_pool_name: str, worker_filter: Any = None,
        offset: int | None = None, limit: int | None = None,
    ) -> Any:
        return await original(self, work_pool_name, worker_filter,
                              offset=offset or 0, limit=limit or 200)

    PrefectClient.read_workers_for_work_pool = read_workers_for_work_pool  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    _patch()
    from prefect.cli import app

    sys.argv = ["prefect", "deploy", *argv]
    result = app()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
