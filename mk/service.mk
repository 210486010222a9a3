# Panel and REST API (issue 7): the service runs inside the hub the runtime installs (proxy, mk/runtime.mk).
# `make bench-api` runs bench/api.py: our list and show p50/p99 with 1,000 studies next to the hub's
# own GET /hub/api/users with 1,000 users, same run (BENCH_API_ARGS to change it).

.PHONY: bench-api
bench-api: venv proxy
	$(BIN)/python bench/api.py $(BENCH_API_ARGS)
