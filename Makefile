# kiln: make demo / make test / make bench work on a fresh machine with Python 3.11 and the package
# registries. Everything is installed into .venv by `make setup` (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kiln-installed
# torch is pinned to the CPU build this kind of machine keeps on disk; elsewhere pip takes it from PyPI.
TORCH  ?= torch==2.13.0

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/python -m bench.demo

test: setup
	$(BIN)/python -m pytest -q -rs

test-fast: setup
	$(BIN)/python -m pytest -q -rs -m "not slow"

bench: setup
	$(BIN)/python -m bench.cli_latency
	$(BIN)/python -m bench.word2vec_vs_gensim

clean:
	rm -rf $(VENV) build *.egg-info
