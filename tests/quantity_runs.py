"""Real torch runs with gradients and Adam's state, for the panel's and the
CLI's quantity tests (torch imported when a run is recorded).

    truth = record_adam_mlp(log_dir)          # grad, m_hat, v_rms; frames of grad and v_rms
    truth["grad"]["0/weight"]                  # numpy, at the last snapshot (step LAST)
    record_weights_only(log_dir)               # quantities=(): the weights alone

The MLP is deep and sigmoid, so its first layers' gradients are orders of
magnitude below its last's (the layer list's colouring must show that order,
and `vanishing_gradients` names them).
"""

import numpy as np

DEPTH = 8  # sigmoid layers before the head
STEPS = 40
SNAPSHOT_FREQ = 10
LAST = STEPS  # the last snapshot's step
TENSORS = 2 * (DEPTH + 1)
FIRST_TAG = "0/weight"
HEAD_TAG = "%d/weight" % (2 * DEPTH)


def _mlp(seed):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers = []
    for _ in range(DEPTH):
        layers += [nn.Linear(8, 8), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(8, 2))


def _train(model, opt, steps, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 8, generator=g), torch.randn(16, 2, generator=g)
    for _ in range(steps):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()


def record_adam_mlp(log_dir, seed=0, quantities=("grad", "m_hat", "v_rms"), frames=("grad", "v_rms")):
    """Trains the MLP under Adam with `watch` recording `quantities` (by
    default grad, m_hat and v_rms; frames of grad and v_rms: m_hat has stats
    only). Returns {quantity: {tag: numpy}} read from the live optimizer
    after the last step (the last snapshot), and "weights"."""
    import torch

    from tensorboard_nnviz.torch import watch

    model = _mlp(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    watcher = watch(model, log_dir, optimizer=opt, snapshot_freq=SNAPSHOT_FREQ,
                    quantities=quantities, quantity_frames=frames)
    _train(model, opt, STEPS, seed)
    watcher.close()
    truth = {"weights": {}, "grad": {}, "m_hat": {}, "v_rms": {}}
    beta1, beta2 = opt.param_groups[0]["betas"]
    for name, p in model.named_parameters():
        tag = name.replace(".", "/")
        state = opt.state[p]
        t = float(state["step"])
        truth["weights"][tag] = p.detach().numpy().copy()
        truth["grad"][tag] = p.grad.detach().numpy().copy()
        truth["m_hat"][tag] = (state["exp_avg"] / (1 - beta1 ** t)).numpy()
        truth["v_rms"][tag] = np.sqrt((state["exp_avg_sq"] / (1 - beta2 ** t)).numpy())
    return truth


def record_weights_only(log_dir, seed=1):
    """The same MLP and training, recording the weights alone (quantities=())."""
    import torch

    from tensorboard_nnviz.torch import watch

    model = _mlp(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    watcher = watch(model, log_dir, optimizer=opt, snapshot_freq=SNAPSHOT_FREQ, quantities=())
    _train(model, opt, STEPS, seed)
    watcher.close()


def rms(a):
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.mean(a * a)))
