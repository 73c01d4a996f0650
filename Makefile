# bollydog: `make run` starts the example service, `make test` runs the tests.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/bollydog service --config example/config.yaml

test: $(BIN)/.installed
	@# A venv re-synced by `uv sync` (without --dev) lost the test tools: put them back.
	@$(BIN)/python -c "import pytest" 2>/dev/null || $(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/dispatch.py

clean:
	rm -rf $(VENV) .pytest_cache
