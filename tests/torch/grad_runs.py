"""Real torch training runs with planted gradient faults, recorded by
`watch` (tests of the gradient findings and quantities)."""

import numpy as np
import torch

from tensorboard_nnviz.torch import watch

DEPTH = 8
WIDTH = 32


def _data(seed=0, n=256, d=16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :4].sum(1, keepdim=True) > 0).float()
    return x, y


def sigmoid_mlp():
    """8 Linear layers with sigmoids between, torch's default init: the
    gradient shrinks by the sigmoid's slope (≤ 1/4) at every layer back."""
    torch.manual_seed(0)
    layers, d = [], 16
    for i in range(DEPTH):
        layers.append(torch.nn.Linear(d, WIDTH if i < DEPTH - 1 else 1))
        if i < DEPTH - 1:
            layers.append(torch.nn.Sigmoid())
        d = WIDTH
    return torch.nn.Sequential(*layers)


def healthy_mlp():
    """The twin: ReLU, He init, LayerNorm after each hidden layer."""
    torch.manual_seed(0)
    layers, d = [], 16
    for i in range(DEPTH):
        linear = torch.nn.Linear(d, WIDTH if i < DEPTH - 1 else 1)
        torch.nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        torch.nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < DEPTH - 1:
            layers += [torch.nn.LayerNorm(WIDTH), torch.nn.ReLU()]
        d = WIDTH
    return torch.nn.Sequential(*layers)


def train(model, log_dir, steps=120, snapshot_freq=10, spike_at=None, lr=1e-3, eps=1e-8,
          loss_factor=1.0, **watch_kwargs):
    """Adam(lr, eps=`eps`) on a small classification task, `watch`ed; with
    `spike_at`, the loss of that step is multiplied by 1e4 (a gradient spike
    the optimizer applies: Adam's step barely changes, the gradient jumps);
    every step's loss by `loss_factor` (small gradients throughout)."""
    x, y = _data()
    opt = torch.optim.Adam(model.parameters(), lr, eps=eps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    with watch(model, log_dir, optimizer=opt, snapshot_freq=snapshot_freq, **watch_kwargs) as w:
        for step in range(1, steps + 1):
            i = (step * 32) % len(x)
            opt.zero_grad()
            loss = loss_fn(model(x[i:i + 32]), y[i:i + 32]) * loss_factor
            if step == spike_at:
                loss = loss * 1e4
            loss.backward()
            opt.step()
    return w, opt


def linear_tags(model):
    """The Linear layers' weight tags, input first."""
    return ["%s/weight" % name for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)]


def rms(columns):
    """Per-snapshot RMS of a tensor from its stats columns (mean, std)."""
    mean, std = np.asarray(columns["mean"], float), np.asarray(columns["std"], float)
    return np.sqrt(mean ** 2 + std ** 2)
