# Everything a fresh machine needs: `make demo` runs a whole consortium, `make test` the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/blockfedml demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest tests -q $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not slow" $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs bench/results .pytest_cache
