"""Process-wide environment defaults; import this module before litellm, prefect or numpy.

Why: litellm fetches its model cost map from the network at import unless told to use the copy it
ships; prefect and litellm send telemetry by default; OpenBLAS spin-waits on extra threads, which
on two shared cores steals the CPU that the event loop and llama.cpp need.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
