"""Public entry point of the TensorBoard plugin (the `tensorboard_plugins`
entry point `nnviz = tensorboard_nnviz.plugin:NNVizLoader`).

The plugin lives in serve/plugin.py; this path is the one TensorBoard's
entry point names and stays, for installs that still point at it.
"""

from tensorboard_nnviz.serve.plugin import NNVizLoader, NNVizPlugin

__all__ = ["NNVizLoader", "NNVizPlugin"]
