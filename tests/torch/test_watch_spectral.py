"""Spectral stats of `watch` runs on real torch training: every matrix
(Conv2d sliced per kernel position from torch's (out, in, kh, kw), Linear
(out, in), LSTM weight_ih/hh, MultiheadAttention in_proj_weight) equals
numpy's float64 SVD of the weights the optimizer hook kept at each snapshot
(tolerances: tests/spectral_reference.py); vectors are null."""

import pytest
import torch
from torch import nn

import torch_models as tm
from runs import read_run
from spectral_reference import assert_recorded_spectral


def conv_net():
    """conv (27 pooled eigenvalues), fc1 (32) and fc2 (24) are fitted; out (2) is too small."""
    torch.manual_seed(7)
    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(3, 8, 3))
    model.add_module("relu", nn.ReLU())
    model.add_module("flat", nn.Flatten())
    model.add_module("fc1", nn.Linear(8 * 6 * 6, 32))
    model.add_module("relu1", nn.ReLU())
    model.add_module("fc2", nn.Linear(32, 24))
    model.add_module("relu2", nn.ReLU())
    model.add_module("out", nn.Linear(24, 2))
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return model, x


def matrices(truth):
    return {tag for tag, w in truth[0].items() if w.ndim >= 2}


def test_conv_and_linear_match_the_svd_and_training_moves_alpha(tmp_path):
    model, x = conv_net()
    truth, _ = tm.train(model, x, tmp_path, steps=8, snapshot_freq=2, lr=0.02,
                        optimizer_cls=torch.optim.Adam, spectral=True)
    run = read_run(tmp_path)
    assert sorted(run["stats"]["conv/weight"]) == [0, 2, 4, 6, 8]
    assert matrices(truth) == {"conv/weight", "fc1/weight", "fc2/weight", "out/weight"}
    seen = assert_recorded_spectral(run, truth, "torch", matrices(truth))
    assert set(seen) == {"conv/weight", "fc1/weight", "fc2/weight"}
    assert all(len(v) > 1 for v in seen.values())


@pytest.mark.parametrize("family, expected", [
    ("lstm", {"rnn/weight_ih_l0", "rnn/weight_hh_l0", "rnn/weight_ih_l1_reverse"}),
    ("transformer", {"layers/0/self_attn/in_proj_weight", "layers/0/self_attn/out_proj/weight",
                     "layers/1/linear1/weight"}),
])
def test_lstm_and_attention_weights_are_matrices(tmp_path, family, expected):
    model, batch = tm.build(family)
    truth, _ = tm.train(model, batch, tmp_path, spectral=True)
    run = read_run(tmp_path)
    assert expected <= matrices(truth)
    assert_recorded_spectral(run, truth, "torch", matrices(truth))
    assert all(run["stats"][t][4]["sv_max"] is not None for t in expected)


def test_spectral_off(tmp_path):
    model, x = conv_net()
    tm.train(model, x, tmp_path, spectral=False)
    stats = read_run(tmp_path)["stats"]["fc1/weight"]
    assert all(s["sv_max"] is None and s["l2"] is not None for s in stats.values())
