# Everything a fresh machine needs: `make demo` runs a whole consortium, `make test` the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast bench clean browser

LOG     = $(VENV)/install.log

# The installers' output goes to $(LOG), shown only when they fail: the demo's output is the demo.
$(STAMP): pyproject.toml
	@echo "Installing BlockFedML into $(VENV) (log: $(LOG))"
	@$(PYTHON) -m venv $(VENV)
	@( $(BIN)/pip install --quiet --upgrade pip && $(BIN)/pip install --quiet -e '.[test]' ) >$(LOG) 2>&1 || \
		{ cat $(LOG); echo "Installing BlockFedML failed: the installer's output is above and in $(LOG)"; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/blockfedml demo $(ARGS)

test: $(STAMP) browser
	$(BIN)/python -m pytest tests -q $(ARGS)

# The audit report's browser test needs Debian's chromium. Install it where apt works
# (CI runs as root); elsewhere say so and go on: that one test then skips.
browser:
	@command -v chromium >/dev/null 2>&1 || ( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium) >/dev/null 2>&1 || \
		echo "chromium could not be installed: the audit report's browser test will be skipped" )

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not slow" $(ARGS)

# The benchmarks' extra (matplotlib for the integrity figure), installed as quietly as the rest.
$(VENV)/.bench: $(STAMP)
	@$(BIN)/pip install --quiet -e '.[test,bench]' >>$(LOG) 2>&1 || \
		{ cat $(LOG); echo "Installing the bench extra failed: see $(LOG)"; exit 1; }
	@touch $@

bench: $(VENV)/.bench
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs bench/results .pytest_cache
