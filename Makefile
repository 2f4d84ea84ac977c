# Two commands for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
# Both create (or reuse) .venv and install what they need into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	cd examples/lantern-regatta && ../../$(BIN)/kling-compose validate
	cd examples/lantern-regatta && ../../$(BIN)/kling-compose run

test: $(STAMP)
	@# tests/e2e/test_report.py opens pages in Debian's Chromium (driven by Playwright, no download)
	test -x /usr/bin/chromium || { if [ "$$(id -u)" = 0 ]; then S=; else S=sudo; fi; $$S apt-get update && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
	$(BIN)/python -m pytest -n 2 tests

bench: $(STAMP)
	$(BIN)/python bench/compile.py
	$(BIN)/python bench/media.py
	$(BIN)/python bench/run.py
	$(BIN)/python bench/run.py --scheduling
	$(BIN)/python bench/mix_50.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
