# Developer and CI entry points. CI runs `.ci/run`, which runs `make test` on a brand-new Debian machine,
# so `setup` must install everything the other targets need (see scripts/setup.sh).

VENV := .venv
BIN := $(VENV)/bin
SANDBOXD_HOST ?= 127.0.0.1
SANDBOXD_PORT ?= 8080
TOKENS_FILE ?= var/tokens.jsonl
ADMIN_TOKEN ?= var/admin.token

.PHONY: setup run test lint image clean

# Install system packages, start dockerd, create .venv and build the runner image; a no-op when all is there.
setup:
	bash scripts/setup.sh

# Serve the API in the foreground on SANDBOXD_HOST:SANDBOXD_PORT, with authentication on (docs/auth.md).
# The first run creates an admin token in $(ADMIN_TOKEN) (mode 0600) and its hash in $(TOKENS_FILE);
# later runs reuse them.
run:
	SANDBOXD_SETUP_TEST_SERVICES=0 bash scripts/setup.sh
	@if [ ! -e $(TOKENS_FILE) ]; then \
		mkdir -p $(dir $(TOKENS_FILE)) $(dir $(ADMIN_TOKEN)) && umask 077 && \
		$(BIN)/sandboxd token create --role admin --file $(TOKENS_FILE) > $(ADMIN_TOKEN).tmp && \
		chmod 600 $(ADMIN_TOKEN).tmp && mv $(ADMIN_TOKEN).tmp $(ADMIN_TOKEN); \
	fi
	@echo "sandboxd: admin token in $(abspath $(ADMIN_TOKEN)); tokens file $(abspath $(TOKENS_FILE))"
	SANDBOXD_TOKENS_FILE=$(abspath $(TOKENS_FILE)) \
		$(BIN)/sandboxd serve --host $(SANDBOXD_HOST) --port $(SANDBOXD_PORT)

# Everything CI checks: lint and type checks, then the test suite (including the Docker tests).
test: setup
	$(MAKE) --no-print-directory lint
	$(BIN)/sandboxd policy test
	$(BIN)/pytest

# Static checks only; needs an existing .venv.
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check sandboxd tests bench trainer_client
	$(BIN)/mypy

# Rebuild the runner image; pass IMAGE_FLAGS="--method debootstrap" to choose the method.
image:
	$(BIN)/sandboxd image build --force $(IMAGE_FLAGS)

# Remove the virtualenv and tool caches (images and the debootstrap cache are kept).
clean:
	rm -rf $(VENV) *.egg-info .mypy_cache .ruff_cache .pytest_cache build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
