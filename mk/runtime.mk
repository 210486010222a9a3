# Local bubbles (runtime subsystem): bubblewrap, iproute2 (isolation tests), the proxy from npm,
# and the bubble environment that every bubble runs (see hub_config/bubble-env/ and
# docs/local-bubbles.md).

SYSTEM_PACKAGES += bubblewrap python3-venv iproute2
PIP_EXTRAS := $(PIP_EXTRAS),runtime
TEST_DEPS += proxy bubble-env
DEMO_DEPS += proxy bubble-env

# Readable by every bubble uid (not under /root, not under a private folder); the hub's
# c.LocalBubbles.bubble_env must name the same path (hub_config reads $BUBBLE_ENV).
export BUBBLE_ENV ?= /opt/bubble-manager/bubble-env
BUBBLE_ENV_SPEC := hub_config/bubble-env
BUBBLE_ENV_PYTHON := /usr/bin/python3
CHP_VERSION := 5.3.0
CHP_PACKAGE := node_modules/configurable-http-proxy/package.json

.PHONY: proxy bubble-env

proxy: $(CHP_PACKAGE)

$(CHP_PACKAGE): mk/runtime.mk
	@if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm; \
	  else echo "npm is missing: install Node.js 20 or later (sudo apt-get install nodejs npm)" >&2; exit 1; fi; \
	fi
	@node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)' || \
	  { echo "configurable-http-proxy $(CHP_VERSION) needs Node.js 20 or later, found $$(node --version)" >&2; exit 1; }
	npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error --prefix "$(CURDIR)" \
	  configurable-http-proxy@$(CHP_VERSION)
	@test -f $@ && touch $@

bubble-env: $(BUBBLE_ENV)/.bubble-manager

$(BUBBLE_ENV)/.installed: $(BUBBLE_ENV_SPEC)/requirements.txt $(BUBBLE_ENV_SPEC)/constraints.txt | system-deps
	@case "$(BUBBLE_ENV)" in /root|/root/*) echo "BUBBLE_ENV=$(BUBBLE_ENV) is under /root, which bubble uids cannot read" >&2; exit 1;; esac
	test -x $(BUBBLE_ENV)/bin/python || $(BUBBLE_ENV_PYTHON) -m venv $(BUBBLE_ENV)
	set -o pipefail; $(BUBBLE_ENV)/bin/python -m pip install -q --disable-pip-version-check \
	  -r $(BUBBLE_ENV_SPEC)/requirements.txt -c $(BUBBLE_ENV_SPEC)/constraints.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BUBBLE_ENV)/bin/python -c "import jupyterlab, jupyterhub, duckdb, pandas, matplotlib, acro"
	touch $@

# The in-bubble extension: this package's top level and bubble_manager/inbubble only (the sandbox
# never reads the repository), enabled in the environment's Jupyter config.
INBUBBLE_FILES := $(shell find bubble_manager/inbubble -type f -not -path '*/__pycache__/*' 2>/dev/null)

$(BUBBLE_ENV)/.bubble-manager: $(BUBBLE_ENV)/.installed bubble_manager/__init__.py $(INBUBBLE_FILES) \
                               $(wildcard $(BUBBLE_ENV_SPEC)/*/*.json)
	site=$$($(BUBBLE_ENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	rm -rf "$$site/bubble_manager" && mkdir -p "$$site/bubble_manager" && \
	cp bubble_manager/__init__.py "$$site/bubble_manager/" && \
	tar -C bubble_manager --exclude=__pycache__ -cf - inbubble | tar -C "$$site/bubble_manager" -xf - && \
	$(BUBBLE_ENV)/bin/python -m compileall -q "$$site/bubble_manager"
	mkdir -p $(BUBBLE_ENV)/etc/jupyter/jupyter_server_config.d $(BUBBLE_ENV)/etc/jupyter/labconfig
	cp $(BUBBLE_ENV_SPEC)/jupyter_server_config.d/*.json $(BUBBLE_ENV)/etc/jupyter/jupyter_server_config.d/
	cp $(BUBBLE_ENV_SPEC)/labconfig/*.json $(BUBBLE_ENV)/etc/jupyter/labconfig/
	chmod -R a+rX $(BUBBLE_ENV)
	touch $@
