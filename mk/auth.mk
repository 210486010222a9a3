# Authentication (issue 9): oauthenticator (the `oauth` extra), Playwright's Python client (the
# `authtest` extra) driving Debian's chromium for the browser tests, and the DEVELOPMENT-ONLY OIDC
# provider (dev/oidc: npm oidc-provider, installed from its lock file into dev/oidc/node_modules)
# that `make demo` and the end-to-end tests sign in through.

SYSTEM_PACKAGES += chromium nodejs:node npm:npm
PIP_EXTRAS := $(PIP_EXTRAS),oauth,authtest
TEST_DEPS += dev-oidc
DEMO_DEPS += dev-oidc

DEV_OIDC_DIR := dev/oidc

.PHONY: dev-oidc
dev-oidc: $(DEV_OIDC_DIR)/node_modules/.installed

$(DEV_OIDC_DIR)/node_modules/.installed: $(DEV_OIDC_DIR)/package.json $(DEV_OIDC_DIR)/package-lock.json | system-deps node-runtime
	@node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)' 2>/dev/null \
	  || { echo "the development OIDC provider needs Node.js 20 or later and npm (found: $$(node --version 2>/dev/null || echo none))" >&2; exit 1; }
	cd $(DEV_OIDC_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@
