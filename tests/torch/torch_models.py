"""Tiny torch models of each module family, and a real training loop that
keeps the true weights at every step.

    model, batch = build("conv2d")
    truth = train(model, batch, log_dir, steps=4, snapshot_freq=2)
    truth[step][tag]  # numpy copy of state_dict()[name] after `step` optimizer steps

Every model maps its batch to a tensor; the loss is its mean square, so any
family trains with the same loop.
"""

import numpy as np
import torch
from torch import nn

BATCH = 4


class Seq2Vec(nn.Module):
    """A recurrent layer (whose output is a tuple) followed by a Linear."""

    def __init__(self, rnn, out_features):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(out_features, 2)

    def forward(self, x):
        out = self.rnn(x)
        out = out[0] if isinstance(out, tuple) else out
        return self.head(out)


class Cells(nn.Module):
    """LSTMCell, GRUCell and RNNCell, one step each."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTMCell(3, 4)
        self.gru = nn.GRUCell(3, 4)
        self.rnn = nn.RNNCell(3, 4)

    def forward(self, x):
        h, _ = self.lstm(x)
        return h + self.gru(x) + self.rnn(x)


class Attention(nn.Module):
    """MultiheadAttention: packed in_proj (self-attention) and, with kdim and
    vdim, separate q/k/v projections with bias_k / bias_v."""

    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.cross = nn.MultiheadAttention(8, 2, kdim=6, vdim=5, add_bias_kv=True,
                                           batch_first=True)

    def forward(self, x):
        q, k, v = x[..., :8], x[..., :6], x[..., :5]
        return self.mha(q, q, q)[0] + self.cross(q, k, v)[0]


class Residual(nn.Module):
    """Branches and a merge that torch.fx can trace."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(5, 6)
        self.left = nn.Linear(6, 6)
        self.right = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return self.head(self.left(h) + self.right(h))


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 3)
        self.b = nn.Linear(5, 3)

    def forward(self, x):
        return self.a(x) if x.sum() > 0 else self.b(x)


def _x(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def _builders():
    return {
        "linear": lambda: (nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)), _x(BATCH, 5)),
        "bilinear": lambda: (nn.Bilinear(3, 4, 2), (_x(BATCH, 3), _x(BATCH, 4, seed=1))),
        "conv1d": lambda: (nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Conv1d(3, 4, 2)),
                           _x(BATCH, 2, 7)),
        "conv2d": lambda: (nn.Sequential(nn.Conv2d(3, 4, (3, 2)), nn.ReLU(), nn.Conv2d(4, 2, 1)),
                           _x(BATCH, 3, 6, 5)),
        "conv3d": lambda: (nn.Conv3d(2, 3, (2, 3, 2)), _x(BATCH, 2, 4, 5, 4)),
        "conv_transpose1d": lambda: (nn.ConvTranspose1d(3, 2, 3), _x(BATCH, 3, 5)),
        "conv_transpose2d": lambda: (nn.ConvTranspose2d(3, 4, (3, 2)), _x(BATCH, 3, 4, 4)),
        "conv_transpose3d": lambda: (nn.ConvTranspose3d(2, 3, (2, 2, 3)), _x(BATCH, 2, 3, 3, 3)),
        # Depthwise with a channel multiplier of 2, and a grouped conv.
        "depthwise": lambda: (nn.Sequential(nn.Conv2d(3, 6, 3, groups=3), nn.Conv2d(6, 4, 1, groups=2)),
                              _x(BATCH, 3, 5, 5)),
        "grouped_transpose": lambda: (nn.ConvTranspose2d(4, 6, 2, groups=2), _x(BATCH, 4, 3, 3)),
        "lstm": lambda: (Seq2Vec(nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True), 8),
                         _x(BATCH, 5, 3)),
        "lstm_proj": lambda: (Seq2Vec(nn.LSTM(3, 4, proj_size=2, batch_first=True), 2), _x(BATCH, 5, 3)),
        "gru": lambda: (Seq2Vec(nn.GRU(3, 4, bidirectional=True, batch_first=True), 8), _x(BATCH, 5, 3)),
        "rnn": lambda: (Seq2Vec(nn.RNN(3, 4, batch_first=True), 4), _x(BATCH, 5, 3)),
        "cells": lambda: (Cells(), _x(BATCH, 3)),
        "mha": lambda: (Attention(), _x(BATCH, 3, 8)),
        "embedding": lambda: (nn.Sequential(nn.Embedding(7, 3), nn.Flatten(), nn.Linear(6, 2)),
                              torch.tensor([[1, 2], [3, 4], [5, 6], [0, 2]])),
        "embedding_bag": lambda: (nn.EmbeddingBag(7, 3), torch.tensor([[1, 2], [3, 4], [5, 6], [0, 2]])),
        "batchnorm": lambda: (nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Flatten(),
                                            nn.BatchNorm1d(27)), _x(BATCH, 2, 3, 3)),
        "norms": lambda: (nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Unflatten(1, (6, 1)),
                                        nn.GroupNorm(2, 6), nn.Flatten(), nn.Unflatten(1, (2, 3)),
                                        nn.LayerNorm((2, 3)), nn.RMSNorm(3)), _x(BATCH, 4)),
        "transformer": lambda: (nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, dim_feedforward=6, dropout=0.0, batch_first=True),
            num_layers=2, enable_nested_tensor=False), _x(BATCH, 3, 8)),
        "residual": lambda: (Residual(), _x(BATCH, 5)),
    }


BUILDERS = _builders()
FAMILIES = sorted(BUILDERS)


def build(family, seed=0):
    torch.manual_seed(seed)
    return BUILDERS[family]()


def forward(model, batch):
    return model(*batch) if isinstance(batch, tuple) else model(batch)


def state(model):
    """{tag: numpy copy} of every floating-point tensor of the state_dict."""
    return {name.replace(".", "/"): t.detach().cpu().float().numpy().copy()
            if t.dtype == torch.bfloat16 else t.detach().cpu().numpy().copy()
            for name, t in model.state_dict().items() if t.is_floating_point()}


def save_steps(path, steps):
    """Saves `{step: {tag: array}}` (weights per step, kept by a process of
    a multi-process test) to the .npz file `path`."""
    np.savez(path, **{"%d:%s" % (step, tag): w for step, ws in steps.items()
                      for tag, w in ws.items()})


def load_steps(path):
    """`{step: {tag: array}}` saved by `save_steps`."""
    steps = {}
    with np.load(path) as f:
        for key in f.files:
            step, tag = key.split(":", 1)
            steps.setdefault(int(step), {})[tag] = f[key]
    return steps


def train(model, batch, log_dir, steps=4, snapshot_freq=2, lr=0.05, optimizer_cls=None, **kwargs):
    """Trains `steps` optimizer steps with `watch`; returns {step: state(model)}
    at every step (0 = before training)."""
    from tensorboard_nnviz.torch import watch

    opt = (optimizer_cls or torch.optim.SGD)(model.parameters(), lr=lr)
    truth = {0: state(model)}
    with watch(model, str(log_dir), optimizer=opt, snapshot_freq=snapshot_freq, **kwargs) as w:
        # Registered after watch's own hook, so it sees the step count after it.
        opt.register_step_post_hook(lambda *_: truth.__setitem__(len(truth), state(model)))
        for _ in range(steps):
            opt.zero_grad()
            out = forward(model, batch)
            out.pow(2).mean().backward()
            opt.step()
    return truth, w


def train_families(mktemp, run="run"):
    """Every family trained by `train` (4 steps, a snapshot every 2) into
    run `run` of a fresh logdir `mktemp(family)`.

    Returns:
      `{family: (model, truth, logdir, run)}`.
    """
    out = {}
    for family in FAMILIES:
        logdir = mktemp(family)
        model, batch = build(family)
        truth, _ = train(model, batch, logdir / run)
        out[family] = (model, truth, logdir, run)
    return out
