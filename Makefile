# `make test` and `make demo` set up everything on a fresh machine.
#
# Three virtualenvs, one per way of recording:
#   .venv        Keras on TensorFlow (CPU build) and torch (CPU build, for the
#                demo's PyTorch run), the browser tests, the demo
#   .venv-jax    Keras on JAX, no TensorFlow
#   .venv-torch  PyTorch (watch, Lightning, Hugging Face transformers and
#                accelerate) and Keras on torch, no TensorFlow
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JAX_VENV := .venv-jax
JAX_STAMP := $(JAX_VENV)/.installed
TORCH_VENV := .venv-torch
TORCH_STAMP := $(TORCH_VENV)/.installed
# The CPU build of torch: on this kind of machine pip takes it from a wheel on
# disk (a plain `torch` from PyPI is a CUDA build of several GB).
TORCH_PIN ?= torch==2.13.0
# weightwatcher for `make bench-ww` only (torch, no TensorFlow): its own venv.
WW_VENV := .venv-ww
WW_STAMP := $(WW_VENV)/.installed
WW_PIN ?= weightwatcher==0.7.7
PIP_FLAGS := --quiet --disable-pip-version-check
PIP := $(BIN)/pip $(PIP_FLAGS)
# pip warns about every missing local index folder; the rest of its output stays.
QUIET_PIP := 2>&1 | grep -v "^WARNING: Location" || true
NO_TF := "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)"

.PHONY: test test-py test-js test-jax test-torch envs demo bench bench-ww chromium clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip $(QUIET_PIP)
	@# The demo's PyTorch run (and its test) next to the Keras runs: the CPU
	@# build, installed first so that nothing pulls the CUDA one.
	$(PIP) install '$(TORCH_PIN)' $(QUIET_PIP)
	$(PIP) install -e '.[test]' $(QUIET_PIP)
	@# Fail loudly if the install broke or an extra pulled the full TF wheel.
	$(BIN)/python -c "import tensorboard_nnviz, keras, tensorflow, tensorboard, playwright, torch"
	@if $(BIN)/pip show tensorflow >/dev/null 2>&1; then \
		echo "error: the full 'tensorflow' wheel was pulled in next to tensorflow-cpu"; exit 1; fi
	touch $@

$(JAX_STAMP): setup.py
	$(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/pip $(PIP_FLAGS) install -e '.[jax,test-tools]' $(QUIET_PIP)
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -c "import tensorboard_nnviz, keras, jax, tensorboard"
	@$(JAX_VENV)/bin/python -c $(NO_TF) || (echo "error: [jax] pulled in TensorFlow"; exit 1)
	touch $@

$(TORCH_STAMP): setup.py
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip $(PIP_FLAGS) install '$(TORCH_PIN)' $(QUIET_PIP)
	$(TORCH_VENV)/bin/pip $(PIP_FLAGS) install -e '.[torch,lightning,transformers,export,test-tools]' $(QUIET_PIP)
	KERAS_BACKEND=torch $(TORCH_VENV)/bin/python -c "import tensorboard_nnviz, keras, torch, lightning, transformers, accelerate, tensorboard"
	@$(TORCH_VENV)/bin/python -c "import torch; assert not torch.version.cuda, torch.__version__" || (echo "error: a CUDA build of torch replaced $(TORCH_PIN)"; exit 1)
	@$(TORCH_VENV)/bin/python -c $(NO_TF) || (echo "error: [torch] pulled in TensorFlow"; exit 1)
	touch $@

$(WW_STAMP): setup.py
	$(PYTHON) -m venv $(WW_VENV)
	$(WW_VENV)/bin/pip $(PIP_FLAGS) install '$(TORCH_PIN)' $(QUIET_PIP)
	$(WW_VENV)/bin/pip $(PIP_FLAGS) install '$(WW_PIN)' -e . $(QUIET_PIP)
	$(WW_VENV)/bin/python -c "import weightwatcher, torch, tensorboard_nnviz.spectral"
	touch $@

envs: $(STAMP) $(JAX_STAMP) $(TORCH_STAMP)

# Browser tests drive Debian's chromium through Playwright.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v /usr/bin/chromium >/dev/null 2>&1 || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

test: envs chromium test-js test-py test-jax test-torch

# Keras on TensorFlow: everything but the torch-only tests. Some of them run
# the JAX and torch environments' python too (the same weights on every
# backend, Keras's distribution API on JAX, torch.distributed ranks). The
# backend serving test is left to test-jax and test-torch: on TensorFlow,
# test_plugin_e2e.py serves callback runs on both ingesters already.
test-py: $(STAMP) $(JAX_STAMP) $(TORCH_STAMP)
	$(BIN)/python -m pytest -q tests --ignore=tests/torch --ignore=tests/backends/test_backend_serve.py

# The backend-independent Keras tests (tests/backends) again on JAX and on torch.
test-jax: $(JAX_STAMP)
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m pytest -q tests/backends

test-torch: $(TORCH_STAMP)
	KERAS_BACKEND=torch $(TORCH_VENV)/bin/python -m pytest -q tests/backends tests/torch

test-js:
	@if ls tests/js/*.test.mjs >/dev/null 2>&1; then node --test tests/js/; else echo "no JS tests yet"; fi

demo: $(STAMP)
	$(BIN)/nnviz demo

# callback_overhead.py runs each backend in its own environment.
bench: envs
	$(BIN)/python benchmarks/callback_overhead.py
	$(BIN)/python benchmarks/frame_latency.py

# Our spectral metrics next to weightwatcher's on the digits demo's models
# (trained with Keras in .venv, analysed as torch modules in .venv-ww).
bench-ww: $(STAMP) $(WW_STAMP)
	$(BIN)/python benchmarks/weightwatcher_compare.py export bench_logs/ww_weights.npz
	$(WW_VENV)/bin/python benchmarks/weightwatcher_compare.py compare bench_logs/ww_weights.npz

clean:
	rm -rf $(VENV) $(JAX_VENV) $(TORCH_VENV) $(WW_VENV) build dist *.egg-info demo_logs bench_logs
