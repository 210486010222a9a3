# Airlock (issue 11): openpyxl and defusedxml (the `airlock` extra) for the sandboxed XLSX parser;
# bubblewrap (already in SYSTEM_PACKAGES) and setpriv (util-linux, always present on Debian) run
# the parser as nobody with no network. The tests make real ACRO outputs with the bubble
# environment's Python (`bubble-env`, mk/runtime.mk) and drive Chromium (mk/auth.mk).
# `make bench-airlock` runs bench/airlock.py (sandboxed checks against the same checks in-process).

SYSTEM_PACKAGES += bubblewrap util-linux:setpriv
PIP_EXTRAS := $(PIP_EXTRAS),airlock
TEST_DEPS += bubble-env

.PHONY: bench-airlock
bench-airlock: venv
	$(BIN)/python bench/airlock.py
