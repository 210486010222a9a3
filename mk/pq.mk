# Post-quantum archives (issue 12): typage (npm age-encryption 0.3), an independent age
# implementation with mlkem768x25519 support, for the interoperability tests in
# tests/archive/test_age_mlkem.py. Installed from the lock file into tests/archive/typage/node_modules
# with Node.js 20.19 or later (which its @noble dependencies require): the machine's, or the one
# `node-runtime` (Makefile) installs when the machine's is older (Debian 12's is 18).
TYPAGE_DIR := tests/archive/typage
SYSTEM_PACKAGES += nodejs:node npm:npm
TEST_DEPS += typage-deps

.PHONY: typage-deps
typage-deps: $(TYPAGE_DIR)/node_modules/.installed

$(TYPAGE_DIR)/node_modules/.installed: $(TYPAGE_DIR)/package.json $(TYPAGE_DIR)/package-lock.json | node-runtime
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null \
	  || { echo "typage interop tests need Node.js 20.19+ and npm on PATH (found: $$(node --version 2>/dev/null || echo none))" >&2; exit 1; }
	cd $(TYPAGE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@
