"""The environment these tests run in is the one the Makefile promised.

`tests/backends` runs three times: in .venv (Keras on TensorFlow), in
.venv-jax and in .venv-torch, with KERAS_BACKEND set by the Makefile.
"""

import importlib.util
import os

import keras


def test_keras_runs_on_the_backend_asked_for():
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


def test_jax_and_torch_environments_have_no_tensorflow():
    if keras.backend.backend() in ("jax", "torch"):
        assert importlib.util.find_spec("tensorflow") is None
