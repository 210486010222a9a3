# bubble-manager: the two set-up commands are `make demo` and `make test` (see README.md).
# Both install what they need: Debian packages with apt-get when run as root, Python packages
# into .venv, npm packages into the repository (node_modules/).
#
# Each subsystem adds its own installs in mk/<subsystem>.mk: Debian packages to
# SYSTEM_PACKAGES, pip extras to PIP_EXTRAS, targets to TEST_DEPS and DEMO_DEPS.
# A SYSTEM_PACKAGES entry `package:command` counts as present when `command` is on the PATH
# (Node.js from another source than Debian, whose npm package would conflict with it).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export BUBBLE_MANAGER_HOME ?= $(CURDIR)/var

SYSTEM_PACKAGES := bubblewrap age zstd postgresql python3-venv
PIP_EXTRAS := test,postgres
TEST_DEPS := system-deps venv
DEMO_DEPS := system-deps venv
PYTEST_ARGS ?=

include $(sort $(wildcard mk/*.mk))

.PHONY: demo demo-cli test system-deps venv clean

system-deps:
	@missing=""; \
	for entry in $(sort $(SYSTEM_PACKAGES)); do \
	  package=$${entry%%:*}; command=$${entry#*:}; \
	  if [ "$$command" != "$$entry" ] && command -v "$$command" >/dev/null 2>&1; then continue; fi; \
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

$(BIN)/.installed: pyproject.toml $(wildcard mk/*.mk)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(PIP_EXTRAS)]'
	touch $@

venv: $(BIN)/.installed

test: $(TEST_DEPS)
	$(BIN)/pytest $(PYTEST_ARGS)

demo: $(DEMO_DEPS)
	bash scripts/demo-hub.sh

# The study lifecycle from the CLI alone, printing each command (no hub).
demo-cli: system-deps venv
	bash scripts/demo-walkthrough.sh

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache node_modules
