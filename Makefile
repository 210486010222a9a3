# bubble-manager: the two set-up commands are `make demo` and `make test` (see README.md).
# Both install what they need: Debian packages with apt-get when run as root, Python packages
# into .venv, npm packages into the repository (node_modules/).
#
# Each subsystem adds its own installs in mk/<subsystem>.mk: Debian packages to
# SYSTEM_PACKAGES, pip extras to PIP_EXTRAS, targets to TEST_DEPS and DEMO_DEPS.
# A SYSTEM_PACKAGES entry `package:command` counts as present when `command` is on the PATH
# (Node.js from another source than Debian, whose npm package would conflict with it).
#
# The npm tools of the suite need Node.js NODE_MIN or later; Debian 12's nodejs is 18. On such a
# machine `node-runtime` installs Node.js NODE_VERSION from npm (its `node` package) into
# .tools/node, which comes first on the PATH of every recipe (pytest included).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export BUBBLE_MANAGER_HOME ?= $(CURDIR)/var

SYSTEM_PACKAGES := bubblewrap age zstd postgresql python3-venv
PIP_EXTRAS := test,postgres
TEST_DEPS := system-deps node-runtime venv
DEMO_DEPS := system-deps node-runtime venv
PYTEST_ARGS ?=
NODE_MIN ?= 20.19
NODE_VERSION ?= 22
NODE_DIR ?= $(CURDIR)/.tools/node
export PATH := $(NODE_DIR)/node_modules/.bin:$(PATH)

include $(sort $(wildcard mk/*.mk))

.PHONY: demo demo-cli test system-deps node-runtime venv clean

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

node-runtime: system-deps
	@if node -e 'const [a, b] = process.versions.node.split(".").map(Number); const [x, y] = "$(NODE_MIN)".split(".").map(Number); process.exit(a > x || (a === x && b >= y) ? 0 : 1)' 2>/dev/null; then :; else \
	  echo "Node.js $$(node --version 2>/dev/null || echo missing) is older than $(NODE_MIN): installing Node.js $(NODE_VERSION) from npm into $(NODE_DIR)"; \
	  npm install --prefix $(NODE_DIR) --no-save --no-package-lock --no-audit --no-fund --loglevel=error node@$(NODE_VERSION) \
	    && $(NODE_DIR)/node_modules/.bin/node --version; \
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
	rm -rf $(VENV) var *.egg-info .pytest_cache node_modules .tools/node
