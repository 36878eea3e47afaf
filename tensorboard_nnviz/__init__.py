"""tensorboard_nnviz: weight heatmaps that evolve across training steps.

`NNVizCallback` is imported lazily (PEP 562) so that TensorBoard, which
imports this package to load the plugin, never imports Keras or TensorFlow.

The folders are the architecture (docs/architecture.md, "Modules"):
`core/` (the format and the maths both sides share), `record/` (the
training side), `serve/` (the TensorBoard side) and `cli/` (the `nnviz`
command); tests/test_architecture.py checks which may import which. The
modules here are thin public entry points: `torch` (`watch`), `lightning`
(its callback) and `plugin` (the `tensorboard_plugins` entry point).
"""

from tensorboard_nnviz.version import __version__

__all__ = ["LogSchedule", "NNVizCallback", "__version__"]


def __getattr__(name):
    if name == "NNVizCallback":
        from tensorboard_nnviz.record.callback import NNVizCallback

        return NNVizCallback
    if name == "LogSchedule":
        from tensorboard_nnviz.record.schedule import LogSchedule

        return LogSchedule
    raise AttributeError("module 'tensorboard_nnviz' has no attribute %r" % name)
