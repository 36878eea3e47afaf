"""tensorboard_nnviz: weight heatmaps that evolve across training steps.

`NNVizCallback` is imported lazily (PEP 562) so that TensorBoard, which
imports this package to load the plugin, never imports Keras or TensorFlow.

The modules form four groups (docs/architecture.md, "Modules"; the import
rules between them are checked by tests/test_architecture.py, which reads
this list):

- shared: format, layout, layout_torch, spectral, version
- write: callback, writer, stats, structure, schedule, budget, eventfiles, fast_crc, torch, structure_torch, lightning
- read: plugin, http, reader, errors, findings
- tools: cli, render, compact, local_provider

shared imports no other group. write (the training process) and read (the
plugin inside TensorBoard) import only shared and their own group; tools
(the `nnviz` command) may import any. Only write modules import a framework
(callback imports Keras, torch and structure_torch import torch, lightning
imports Lightning); shared, read and tools never import Keras, TensorFlow or
torch.
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
