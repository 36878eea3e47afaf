"""Public entry point of the Lightning callback:
`from tensorboard_nnviz.lightning import NNVizCallback`.

The callback lives in record/lightning.py; this path is the one users
import and stays.
"""

from tensorboard_nnviz.record.lightning import NNVizCallback

__all__ = ["NNVizCallback"]
