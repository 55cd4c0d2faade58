# Every target sets up the virtual environment first if it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-router bench-gateway bench-load bench-peers chaos dev clean chromium axe

# An editable install leaves the package uncompiled, and with PYTHONDONTWRITEBYTECODE set (as
# on the dev box and in CI) nothing ever writes its bytecode: every workflow sandbox would
# compile the modules it re-imports (bench/README.md). compileall writes it regardless.
$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q orchestrator > /dev/null
	@touch $@

demo: $(BIN)/.installed
	$(BIN)/orchestrator demo

dev: $(BIN)/.installed
	$(BIN)/orchestrator dev --script model_scripts/customer_refund.yaml

# Third-party MCP server from npm that the connector tests run against (stdio and
# streamable HTTP), installed into the project, never globally.
EVERYTHING := .cache/npm/node_modules/@modelcontextprotocol/server-everything/package.json
$(EVERYTHING):
	npm install --silent --no-audit --no-fund --prefix .cache/npm @modelcontextprotocol/server-everything@2026.8.31

# axe-core, the accessibility checker the inbox's browser tests inject into each page
# (tests/approvals/test_inbox_browser.py), installed into the project like the MCP server.
AXE := .cache/npm/node_modules/axe-core/axe.min.js
$(AXE):
	npm install --silent --no-audit --no-fund --prefix .cache/npm axe-core@4.14.1

axe: $(AXE)

# Debian's Chromium for the approval inbox's browser tests, driven by Playwright through its
# executable_path (Playwright's own browser download is never used). Installed when root.
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends chromium)

test: $(BIN)/.installed $(EVERYTHING) $(AXE) chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/orchestrator skills check
	$(BIN)/pytest -n auto --maxprocesses 4

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python bench/step_overhead.py

# LiteLLM comes from the separate `bench` extra, so `make test` and CI never install it.
bench-router: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/router.py

# The gateway's added latency beside LiteLLM's proxy in the same run (bench/README.md).
bench-gateway: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/gateway.py --litellm

# 500 concurrent sessions (most parked on approvals) on the embedded server, none lost, with
# the same plan on LangGraph beside it (the `bench` extra again).
bench-load: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/load.py --sessions 500

# Per-step cost beside Temporal's OpenAI-agents plugin and pydantic-ai's Temporal durability
# (the `bench` extra; bench/README.md, "Same-engine peers").
bench-peers: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/step_overhead.py --peers --rounds-per-session 20
	$(BIN)/python bench/step_overhead.py --peers --rounds-per-session 3 --steps 60
	$(BIN)/python bench/step_overhead.py --peers --rounds-per-session 3 --steps 150 --concurrency 50

# The crash harness in full: 20 sessions, the worker SIGKILLed 40 times (bench/README.md).
chaos: $(BIN)/.installed
	$(BIN)/python bench/chaos.py --sessions 20 --kills 40

clean:
	rm -rf $(VENV) .orchestrator .pytest_cache .mypy_cache .ruff_cache
