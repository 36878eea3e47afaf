"""The fused pass and the numpy path of stats.py agree (tests/fused_checks.py)
on every tensor `watch` records of every torch module family
(tests/torch/torch_models.py), with torch's layouts and units."""

import pytest

import torch_models as tm
from fused_checks import check_weight
from tensorboard_nnviz.record import stats as S
from tensorboard_nnviz.record import structure_torch


@pytest.mark.parametrize("family", tm.FAMILIES)
def test_every_torch_family_every_dtype(family):
    assert S._fused_kernel() is not None, "numba is installed by setup.py: the fused pass runs"
    model, _ = tm.build(family)
    entries = [e for e in structure_torch.entries(model) if e.recorded]
    assert entries
    for e in entries:
        value = e.tensor.detach().float().numpy()
        check_weight(e.tag, value, e.layer_class, e.layer)
