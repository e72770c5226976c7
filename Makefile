# Fieldsight — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PYTHONDONTWRITEBYTECODE := 1

# Network tests run in a loopback-only network namespace when we may create one (root), so no
# packet can leave 127.0.0.1. Elsewhere they run as they are, with ICE pinned to loopback.
CAN_ISOLATE := $(shell [ "$$(id -u)" = 0 ] && unshare -n true 2>/dev/null && echo yes)
ifeq ($(CAN_ISOLATE),yes)
NETNS := unshare -n sh -c 'ip link set lo up && exec "$$0" "$$@"'
endif

.PHONY: run test lint bench system-deps test-unit test-network clean format

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: install into .venv and start the server on 127.0.0.1:8000 (SQLite + files under ./data)
run: $(STAMP)
	$(BIN)/python -m server

## system-deps: what the tests need from the system (Chromium for page tests)
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium libusb-1.0-0; \
		else echo "!! chromium is missing: install it (apt-get install chromium) or page tests will skip"; fi; \
	fi
	@if ! ldconfig -p 2>/dev/null | grep -q libusb-1.0.so.0 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libusb-1.0-0; \
	fi

## lint: ruff (lint + format check) and mypy strict
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-network: $(STAMP) system-deps
	@if [ "$(CAN_ISOLATE)" != yes ]; then echo "!! not root: network tests run without a loopback-only namespace (ICE pinned to 127.0.0.1)"; fi
	$(NETNS) $(BIN)/python -m pytest tests/integration tests/e2e

## test: everything: lint, unit + storage (SQLite and PostgreSQL), loopback WebRTC, real Chromium
test: $(STAMP) system-deps lint test-unit test-network

## bench: benchmarks; a table on stdout and JSON under bench-results/
bench: $(STAMP) system-deps
	$(NETNS) $(BIN)/python -m tests.bench

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) data bench-results .pytest_cache .mypy_cache .ruff_cache
