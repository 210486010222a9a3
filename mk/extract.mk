# Extract subsystem (issue 5): DuckDB, NumPy and tqdm are core dependencies, so the `extract`
# extra is empty; the tests build their own small demo warehouse, nothing else to install.
# `make bench-extract` runs bench/extract.py (1M persons; BENCH_EXTRACT_ARGS to change it).

PIP_EXTRAS := $(PIP_EXTRAS),extract
BENCH_EXTRACT_ARGS ?=

.PHONY: bench-extract
bench-extract: venv
	$(BIN)/python bench/extract.py $(BENCH_EXTRACT_ARGS)
