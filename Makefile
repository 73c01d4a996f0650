# bollydog: `make run` starts the example service, `make test` runs the tests.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench bench-full clean

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

# The peers (FastAPI, Litestar, FastStream) and uvloop/httptools: the `bench` extra. The load
# generator and Redis: `apt-get install wrk redis-server`. `make bench`: dispatch, HTTP (-c32,
# both stacks), distribute (100 B), telemetry, MCP, hot reload, rules and durable runs, a few
# minutes; `make bench-full` adds the HTTP scaling rows (-c1/-c32/-c256), the 10 KB and 1 MB
# payloads, the 1M-execute growth check, 20 swaps and 20 restarts, and the rules' size curve.
BENCH_DEPS = $(BIN)/python -c "import fastapi, litestar, uvloop, httptools, faststream" 2>/dev/null \
	|| $(BIN)/pip install --quiet -e '.[dev,bench]'

bench: $(BIN)/.installed
	@$(BENCH_DEPS)
	$(BIN)/python benchmarks/dispatch.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/http.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/distribute.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/telemetry.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/mcp.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/reload.py --swaps 5 --restarts 5 $(BENCH_ARGS)
	$(BIN)/python benchmarks/rules.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/durable.py --rounds 3 $(BENCH_ARGS)

bench-full: $(BIN)/.installed
	@$(BENCH_DEPS)
	$(BIN)/python benchmarks/dispatch.py --growth 1000000 $(BENCH_ARGS)
	$(BIN)/python benchmarks/http.py --scaling $(BENCH_ARGS)
	$(BIN)/python benchmarks/distribute.py --sizes 100,10000,1000000 $(BENCH_ARGS)
	$(BIN)/python benchmarks/telemetry.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/mcp.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/reload.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/rules.py --curve 1000,10000,100000 $(BENCH_ARGS)
	$(BIN)/python benchmarks/durable.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
