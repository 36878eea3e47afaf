"""One process of the FSDP2 test (test_sharded.py), or the single-process reference.

    python sharded_worker.py single OUT OPTIMIZER
    python sharded_worker.py fsdp OUT OPTIMIZER RANK WORLD PORT [hide]

Trains the same small model of the families FSDP2 shards in practice
(Embedding, MultiheadAttention, LayerNorm, Linear) on the same 8 sequences
for STEPS steps of OPTIMIZER ("sgd": with momentum; "adam") with
`watch(..., snapshot_freq=2, spectral=True, max_cells=MAX_CELLS)`, every
quantity with frames (sgd: grad and momentum; adam: grad, m_hat, v_rms):
alone on all 8, or as one of WORLD ranks (gloo,
127.0.0.1) on its own 8 / WORLD under FSDP2 (`fully_shard` of the
embedding, the first linear layer and the model: every weight cut along dim 0,
unevenly and with empty shards at 4 ranks). Rank 0 (or the single
process) saves the whole weights after each step to OUT/truth.npz (FSDP2:
`full_tensor()`, outside the recorder); the event files go to OUT/run
(the same directory for every rank: only rank 0 may write there).

With `hide`, rank 1 hides the momentum buffer of `hidden.weight` from the
recorder at step HIDDEN_AT (as an optimizer without state yet for it):
the ranks must agree to record none of that quantity at that step.
"""

import os
import sys

import torch
from torch import nn

import torch_models
from tensorboard_nnviz.torch import watch

STEPS = 6
SAMPLES, LENGTH, VOCAB, DIM = 8, 6, 50, 16
MAX_CELLS = 200  # the embedding, attention and first linear weights: block-reduced frames
QUANTITIES = ("grad", "m_hat", "v_rms", "momentum")
HIDDEN_AT = 4


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.attn = nn.MultiheadAttention(DIM, 4, batch_first=True)
        self.norm = nn.LayerNorm(DIM)  # weight all ones at first: the centred sum of squares
        self.hidden = nn.Linear(DIM, 24)
        self.out = nn.Linear(24, 5)  # 5 rows of weight over 4 ranks: 2, 2, 1, 0

    def forward(self, x):
        h = self.embed(x)
        h = self.norm(h + self.attn(h, h, h, need_weights=False)[0])
        return self.out(torch.tanh(self.hidden(h.mean(dim=1))))


def model():
    torch.manual_seed(0)
    return Model()


def data():
    g = torch.Generator().manual_seed(1)
    return (torch.randint(0, VOCAB, (SAMPLES, LENGTH), generator=g),
            torch.randint(0, 5, (SAMPLES,), generator=g))


def optimizer(name, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.3, momentum=0.5)
    # A large eps: where a gradient is 0 up to rounding (the attention's key
    # bias), Adam's step would turn that rounding into lr-sized updates.
    return torch.optim.Adam(params, lr=0.01, eps=1e-3)


def hide_momentum(net, opt):
    """Hides `hidden.weight`'s momentum buffer during the snapshot of step
    HIDDEN_AT (a step hook that runs before the recorder's); returns the
    function that puts it back after the step."""
    hidden, stash, steps = net.hidden.weight, {}, [0]

    def hook(optimizer, args, kwargs):
        steps[0] += 1
        if steps[0] == HIDDEN_AT:
            stash["buf"] = opt.state[hidden].pop("momentum_buffer")

    def restore():
        if "buf" in stash:
            opt.state[hidden]["momentum_buffer"] = stash.pop("buf")

    opt.register_step_post_hook(hook)
    return restore


def train(net, x, y, out_dir, opt_name, rank=0, hide=False):
    opt = optimizer(opt_name, net.parameters())
    restore = hide_momentum(net, opt) if hide else (lambda: None)
    truth = {}

    def keep(step):
        whole = {}
        for k, v in net.state_dict().items():
            v = v.full_tensor() if hasattr(v, "full_tensor") else v  # every rank gathers
            whole[k.replace(".", "/")] = v.detach().numpy().copy()
        if rank == 0:
            truth[step] = whole

    keep(0)
    with watch(net, os.path.join(out_dir, "run"), optimizer=opt, snapshot_freq=2, spectral=True,
               max_cells=MAX_CELLS, quantities=QUANTITIES, quantity_frames=True) as watcher:
        # Under FSDP2 the shards are measured where they lie, not gathered.
        assert (watcher.recorder.shards is not None) == torch.distributed.is_initialized()
        for step in range(1, STEPS + 1):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            restore()
            keep(step)
    if rank == 0:
        torch_models.save_steps(os.path.join(out_dir, "truth.npz"), truth)


def main(argv):
    mode, out_dir, opt_name = argv[0], argv[1], argv[2]
    x, y = data()
    if mode == "single":
        train(model(), x, y, out_dir, opt_name)
        return
    rank, world, port = int(argv[3]), int(argv[4]), argv[5]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.distributed.fsdp import fully_shard

        net = model()
        for layer in (net.embed, net.hidden):
            fully_shard(layer)
        fully_shard(net)
        part = slice(rank * SAMPLES // world, (rank + 1) * SAMPLES // world)
        train(net, x[part], y[part], out_dir, opt_name, rank,
              hide=rank == 1 and argv[6:] == ["hide"])
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
