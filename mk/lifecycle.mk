# Lifecycle reconciler (issue 8): jupyterhub-idle-culler (the `lifecycle` extra) gives the rule
# by which idle bubbles are stopped. The fault tests mount a 1 MiB tmpfs (root, `mount` from
# util-linux, always present on Debian) to fill the disk under the archives.
# `make bench-reconcile` runs bench/reconcile.py (one tick with 1,000 and 10,000 studies).

PIP_EXTRAS := $(PIP_EXTRAS),lifecycle

.PHONY: bench-reconcile
bench-reconcile: venv
	$(BIN)/python bench/reconcile.py
