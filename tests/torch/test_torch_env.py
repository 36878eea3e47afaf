"""The torch environment: PyTorch's CPU build and no TensorFlow."""

import importlib.util

import torch


def test_torch_is_the_cpu_build_without_tensorflow():
    assert not torch.cuda.is_available()
    assert importlib.util.find_spec("tensorflow") is None
