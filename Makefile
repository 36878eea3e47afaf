# `make test` and `make demo` set up everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/pip --quiet --disable-pip-version-check

.PHONY: test test-py test-js demo bench chromium clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PIP) install -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
	@# Fail loudly if the install broke or an extra pulled the full TF wheel.
	$(BIN)/python -c "import tensorboard_nnviz, keras, tensorflow, tensorboard, playwright"
	@if $(BIN)/pip show tensorflow >/dev/null 2>&1; then \
		echo "error: the full 'tensorflow' wheel was pulled in next to tensorflow-cpu"; exit 1; fi
	touch $@

# Browser tests drive Debian's chromium through Playwright.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v /usr/bin/chromium >/dev/null 2>&1 || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

test: $(STAMP) chromium test-js test-py

test-py: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-js:
	@if ls tests/js/*.test.mjs >/dev/null 2>&1; then node --test tests/js/; else echo "no JS tests yet"; fi

demo: $(STAMP)
	$(BIN)/nnviz demo

bench: $(STAMP)
	$(BIN)/python benchmarks/callback_overhead.py
	$(BIN)/python benchmarks/frame_latency.py

clean:
	rm -rf $(VENV) build dist *.egg-info demo_logs bench_logs
