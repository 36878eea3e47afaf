"""tensorboard_nnviz: weight heatmaps that evolve across training steps.

`NNVizCallback` is imported lazily (PEP 562) so that TensorBoard, which
imports this package to load the plugin, never imports Keras or TensorFlow.
"""

from tensorboard_nnviz.version import __version__

__all__ = ["LogSchedule", "NNVizCallback", "__version__"]


def __getattr__(name):
    if name == "NNVizCallback":
        from tensorboard_nnviz.callback import NNVizCallback

        return NNVizCallback
    if name == "LogSchedule":
        from tensorboard_nnviz.schedule import LogSchedule

        return LogSchedule
    raise AttributeError("module 'tensorboard_nnviz' has no attribute %r" % name)
