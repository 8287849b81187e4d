# Two entry points on a fresh machine: `make demo` and `make test`.
# Each creates .venv (if missing) and installs what it needs, then runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
BASE   := $(VENV)/.installed
URI    ?=

.PHONY: demo test test-all test-cloud test-spark lint bench-ci bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev,s3,azure,gcs,spark]"
	touch $(STAMP)

$(BASE): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $(BASE)

install: $(STAMP)

demo: $(BASE)
	$(PY) -m lakehouse.demo $(URI)

lint: $(STAMP)
	$(PY) -m ruff check lakehouse tests benchmarks

# Default suite: lint + unit, conformance, interop, concurrency, CLI, one smoke run of the
# heavier suites (cloud emulators, benchmarks); well under 15 minutes on 2 cores.
test: $(STAMP) lint
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup --run-slow tests

# Only the Spark integration tests (one local SparkSession; needs Java 17+).
test-spark: $(STAMP)
	$(PY) -m pytest -q -m spark tests

bench-ci: $(STAMP)
	$(PY) -m benchmarks run --scale ci

bench: $(STAMP)
	$(PY) -m benchmarks run --scale full

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
