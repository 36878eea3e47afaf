"""Public entry point of the Hugging Face Trainer callback:
`from tensorboard_nnviz.transformers import NNVizCallback`.

The callback lives in record/transformers.py; this path is the one users
import and stays.
"""

from tensorboard_nnviz.record.transformers import NNVizCallback

__all__ = ["NNVizCallback"]
