# Two entry points: `make demo` and `make test`. Both (re)build .venv from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-gpu bench figures notebooks verify clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall whenever pyproject.toml changes. torch==2.13.0 first: it is a local CPU wheel here,
# while an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,torch,flax,equinox,data]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gradspec diagnose --cell rnn --nonlinearity tanh --hidden 128 --init gaussian --gain 1.5 --T 500

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu

figures: $(STAMP)
	$(BIN)/gradspec figures --quick --out figures

# Every notebook top to bottom at its full size (make test runs them small).
notebooks: $(STAMP)
	for nb in notebooks/[0-9][0-9]_*.py; do \
		GRADSPEC_NOTEBOOK_SMALL=0 MPLBACKEND=Agg $(BIN)/python $$nb || exit 1; \
	done

verify: $(STAMP)
	$(BIN)/gradspec verify

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick --out benchmarks/results.json

clean:
	rm -rf $(VENV)
