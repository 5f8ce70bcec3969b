# The farm's two commands: `make run` (master + local worker, UI on http://localhost:8010)
# and `make test` (the whole suite). Everything else here is what those two need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < requirements/lock.txt | cut -d' ' -f1)
UV_PIN := $(shell grep '^uv==' requirements/lock.txt)
# The farm's UI plugin (master/www), a distribution of its own: installed again when a file changes.
WWW_PLUGIN := master/www
WWW_STAMP := $(VENV)/.www-$(shell cat $(WWW_PLUGIN)/pyproject.toml $(WWW_PLUGIN)/farm_www/* $(WWW_PLUGIN)/farm_www/static/* 2>/dev/null | cksum | cut -d' ' -f1)

CROSSBAR_VENV := .venv-crossbar
CROSSBAR_STAMP := $(CROSSBAR_VENV)/.installed-$(shell cksum < requirements/crossbar-lock.txt | cut -d' ' -f1)

ANSIBLE_VENV := .venv-ansible
ANSIBLE_STAMP := $(ANSIBLE_VENV)/.installed-$(shell cksum < requirements/ansible-lock.txt | cut -d' ' -f1)

.PHONY: run test test-fast bench verdicts venv ansible-venv crossbar-venv sandbox-tools lock clean

venv: $(STAMP) $(WWW_STAMP)

$(STAMP): requirements/lock.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "The farm needs Python 3.11 or newer for the master: set PYTHON=python3.11 (or newer) and run make again.")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check '$(UV_PIN)'
	$(BIN)/uv pip install -q --no-config --python $(BIN)/python -r requirements/lock.txt
	rm -f $(VENV)/.installed-* && touch $@

$(WWW_STAMP): $(STAMP)
	$(BIN)/uv pip install -q --no-config --no-cache --reinstall --no-deps --python $(BIN)/python ./$(WWW_PLUGIN)
	rm -f $(VENV)/.www-* && touch $@

# Ansible and ansible-lint live apart from the farm's own environment (ansible/README.md).
ansible-venv: $(ANSIBLE_STAMP)

$(ANSIBLE_STAMP): requirements/ansible-lock.txt $(STAMP)
	test -x $(ANSIBLE_VENV)/bin/python || $(BIN)/uv venv -q --python $(BIN)/python $(ANSIBLE_VENV)
	$(BIN)/uv pip install -q --no-config --python $(ANSIBLE_VENV)/bin/python -r requirements/ansible-lock.txt
	rm -f $(ANSIBLE_VENV)/.installed-* && touch $@

# Crossbar, the message queue's router of a cluster of masters, apart as well. The cluster tests
# need it and are skipped, saying so, where it is missing; .ci/run installs it.
crossbar-venv: $(CROSSBAR_STAMP)

$(CROSSBAR_STAMP): requirements/crossbar-lock.txt $(STAMP)
	test -x $(CROSSBAR_VENV)/bin/python || $(BIN)/uv venv -q --python $(BIN)/python $(CROSSBAR_VENV)
	$(BIN)/uv pip install -q --no-config --python $(CROSSBAR_VENV)/bin/python -r requirements/crossbar-lock.txt
	rm -f $(CROSSBAR_VENV)/.installed-* && touch $@

lock:
	$(BIN)/uv pip compile -q --no-config requirements/requirements.in -o requirements/lock.txt --python-version 3.11
	$(BIN)/uv pip compile -q --no-config requirements/ansible.in -o requirements/ansible-lock.txt --python-version 3.11
	$(BIN)/uv pip compile -q --no-config requirements/crossbar.in -o requirements/crossbar-lock.txt --python-version 3.11

# Every package runs in a bubblewrap sandbox (worker/runner.py); install it where it is missing.
sandbox-tools:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's bubblewrap with apt-get, as root: every package the farm tests runs in its sandbox."; \
	    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap; } || { \
	      echo "apt-get could not install bubblewrap (above: another apt or dpkg may hold its lock). Wait for it to"; \
	      echo "finish, or install bubblewrap yourself (apt-get install bubblewrap), then run make again."; exit 1; }; \
	  else \
	    echo "bubblewrap is missing: install it (sudo apt-get install bubblewrap, or dnf install bubblewrap)."; exit 1; \
	  fi; }

run: venv sandbox-tools
	$(BIN)/python -m master.run

test: venv ansible-venv sandbox-tools
	$(BIN)/python -m pytest

test-fast: venv ansible-venv sandbox-tools
	$(BIN)/python -m pytest -m "not slow"

# The farm measured against the packages' own install and test time (bench/README.md).
bench: venv sandbox-tools
	$(BIN)/python -m bench.run

# The farm's verdicts against the truth found by hand, on releases drawn at random (bench/verdicts/README.md).
# It reaches PyPI and is not part of `make test`.
verdicts: venv sandbox-tools
	$(BIN)/python -m bench.verdicts.run

clean:
	rm -rf $(VENV) $(ANSIBLE_VENV) $(CROSSBAR_VENV) var
