# bubble-manager: the two set-up commands are `make demo` and `make test` (see README.md).
# Both install what they need: Debian packages with apt-get when run as root, Python packages
# into .venv, npm packages into the repository.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export BUBBLE_MANAGER_HOME ?= $(CURDIR)/var

# Debian packages the project and its test suite use.
SYSTEM_PACKAGES := bubblewrap age zstd postgresql python3-venv

.PHONY: demo test system-deps venv clean

system-deps:
	@missing=""; \
	for package in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages:$$missing; run make as root or: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,postgres]'
	touch $@

venv: $(BIN)/.installed

test: system-deps venv
	$(BIN)/pytest

demo: system-deps venv
	bash scripts/demo-walkthrough.sh

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache
