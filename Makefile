# Development tasks. `make demo` installs venvpack into .venv and packs the example app;
# `make test` runs everything CI runs (lint, types, all test tiers).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := $(or $(TMPDIR),/tmp)/venvpack-demo

.PHONY: demo test test-fast lint clean

$(BIN)/venvpack: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/venvpack
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/venvpack tar --project examples/hello -o $(DEMO)/hello.tar.zst
	mkdir -p "$(DEMO)/unpacked here" && tar -C "$(DEMO)/unpacked here" -xf $(DEMO)/hello.tar.zst
	"$(DEMO)/unpacked here/hello/bin/hello"

lint: $(BIN)/venvpack
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy

# Two workers (pytest-xdist), each taking whole files: most tests wait on subprocesses,
# uv and compressors, so two keep both cores busy; roots are built once, under a lock.
test: lint
	$(BIN)/pytest -n 2 --dist loadfile

test-fast: $(BIN)/venvpack
	$(BIN)/pytest -m "not integration and not packaging and not roots and not standalone"

clean:
	rm -rf $(VENV) $(DEMO)
