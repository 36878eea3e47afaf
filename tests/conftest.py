"""Shared by every test directory: the test helpers (keras_models, tb_server,
…) live in tests/ and are imported by name from tests/backends and
tests/torch too. Imports neither Keras nor TensorFlow, so the JAX and torch
environments load it as well."""

import os
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
