# The farm's two commands: `make run` (master + local worker, UI on http://localhost:8010)
# and `make test` (the whole suite). Everything else here is what those two need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < requirements/lock.txt | cut -d' ' -f1)
UV_PIN := $(shell grep '^uv==' requirements/lock.txt)

.PHONY: run test test-fast venv lock clean

venv: $(STAMP)

$(STAMP): requirements/lock.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "The farm needs Python 3.11 or newer for the master: set PYTHON=python3.11 (or newer) and run make again.")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check '$(UV_PIN)'
	$(BIN)/uv pip install -q --no-config --python $(BIN)/python -r requirements/lock.txt
	rm -f $(VENV)/.installed-* && touch $@

lock:
	$(BIN)/uv pip compile -q --no-config requirements/requirements.in -o requirements/lock.txt --python-version 3.11

run: venv
	$(BIN)/python -m master.run

test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) var
