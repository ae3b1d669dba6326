"""Fault injection for the flow-run processes of the distributed tests (test-only).

The ops tests put this directory on the workers' PYTHONPATH with SIEGEFLOW_TEST_FAULTS=1; the
worker's flow-run subprocesses inherit both, so Python imports this module at start-up. It
arms `tests.ops.faults` to patch `tasks.completions` as soon as something imports it. Nothing
happens in processes without SIEGEFLOW_TEST_FAULTS=1.
"""

import os

if os.environ.get("SIEGEFLOW_TEST_FAULTS") == "1":
    from tests.ops import faults

    faults.arm()
