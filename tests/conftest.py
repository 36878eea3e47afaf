"""Shared by every test directory.

The test helpers live in tests/ and are imported by name from tests/backends
and tests/torch too: `runs` (runs written without Keras, and read back),
`tb_server` (a real `tensorboard` process), `keras_models` (tiny Keras
models; imports Keras), `chromium`.

This file imports neither Keras, TensorFlow nor torch, so the JAX and torch
environments load it as well.
"""

import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


def _make_app(logdir):
    from tensorboard.backend import application
    from tensorboard.plugins import base_plugin

    from tensorboard_nnviz.cli.local_provider import local_data_provider
    from tensorboard_nnviz.serve import plugin as plugin_lib

    provider, _ = local_data_provider(str(logdir))
    context = base_plugin.TBContext(data_provider=provider, logdir=str(logdir))
    plugin = plugin_lib.NNVizLoader().load(context)
    return application.TensorBoardWSGI([plugin], data_provider=provider), plugin


@pytest.fixture(scope="session")
def make_app():
    """`make_app(logdir)` → `(app, plugin)`: TensorBoard's own WSGI app
    (its routing and middlewares) around our plugin, loaded by `NNVizLoader`
    over TensorBoard's `MultiplexerDataProvider` on `logdir`."""
    return _make_app
