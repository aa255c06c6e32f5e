# The two commands a new user runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-compare fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Every `make bench` figure of this tree beside those of the commit BASE,
# measured in one run (docs/performance.md); BENCH_ARGS=--quick for a short run.
BASE ?= main
BENCH_ARGS ?=
bench-compare: $(STAMP)
	$(BIN)/python -m benchmarks.compare $(BASE) $(BENCH_ARGS)

# A longer, random run of the invariant fuzz test (tests/fuzz): FUZZ_EXAMPLES per server kind.
FUZZ_EXAMPLES ?= 1000
fuzz: $(STAMP)
	ZERFOO_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ZERFOO_FUZZ_SEED=random $(BIN)/python -m pytest tests/fuzz -p no:cacheprovider

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage .coverage.*
