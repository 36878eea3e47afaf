"""Public entry point of the PyTorch recorder: `from tensorboard_nnviz.torch import watch`.

The recorder lives in record/torch_watch.py (docs/architecture.md,
"PyTorch recorder"); this path is the one users import and stays.
"""

from tensorboard_nnviz.record.torch_watch import Watcher, watch

__all__ = ["Watcher", "watch"]
